/**
 * Walks GET /api/homes page by page ({homes, limit, offset}) so that every home is reachable
 * from the list, however many there are. No DOM here: node:test drives it.
 */

/** The server's own bounds of `limit` (server/api/homes.py DEFAULT_PAGE, MAX_PAGE). */
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;

/** A page size from a user setting: a whole number within the server's bounds. */
export function pageSize(value) {
  const n = Number(value);
  return Number.isInteger(n) && n >= 1 ? Math.min(n, MAX_PAGE) : DEFAULT_PAGE;
}

/**
 * @param {(query: {limit: number, offset: number}) => Promise<{homes?: object[],
 *   limit?: number}>} fetchPage one GET /api/homes
 * @param {number} size homes a page
 * @returns {{next: () => Promise<object[]>, readonly done: boolean}} next() gives the homes
 *   of the following page not shown yet; a failed next() can be called again.
 */
export function createPager(fetchPage, size = DEFAULT_PAGE) {
  const limit = pageSize(size);
  const seen = new Set();
  let offset = 0;
  let done = false;
  return {
    get done() { return done; },
    async next() {
      if (done) return [];
      const page = await fetchPage({ limit, offset });
      const homes = (page && page.homes) || [];
      offset += homes.length;
      // A short page is the last one. A full page may be too: the next call then finds none.
      if (homes.length < ((page && page.limit) || limit)) done = true;
      // Homes are listed oldest first, so new ones come at the end; a deletion meanwhile can
      // shift one already shown into the next page, which must not show it twice.
      const fresh = homes.filter((home) => !seen.has(home.id));
      for (const home of fresh) seen.add(home.id);
      return fresh;
    },
  };
}
