/**
 * Rebasing the admin's unsaved edits onto a newer version of the home after a version conflict:
 * a three-way merge of the version the editor loaded (base), what the admin has on screen
 * (local) and what the server has now (server). What the admin changed wins; what they left
 * alone takes the server's value, so Save writes their edits without undoing the other save.
 * Pure data in and out (no DOM), so node:test covers it.
 */

/**
 * @typedef {object} PhotoEntry
 * @property {string} key
 * @property {'image'|'upload'} kind
 * @property {number} [imageId] for kind 'image'
 * @property {string} caption
 */

/**
 * @param {Record<string, any>} base the home the editor loaded
 * @param {Record<string, string>} local the field values on screen
 * @param {Record<string, any>} server the home as the server has it now
 * @returns {{values: Record<string, string>, kept: string[], clashes: string[], taken: string[]}}
 *   kept: fields the admin edited (their value stays); clashes: kept fields the other save
 *   changed too; taken: fields only the other save changed.
 */
export function mergeFields(base, local, server) {
  const values = {};
  const kept = [];
  const clashes = [];
  const taken = [];
  for (const [name, mine] of Object.entries(local)) {
    const was = base[name] ?? '';
    const now = server[name] ?? '';
    if (mine !== was) {
      values[name] = mine;
      kept.push(name);
      if (now !== was && now !== mine) clashes.push(name);
    } else {
      values[name] = now;
      if (now !== was) taken.push(name);
    }
  }
  return { values, kept, clashes, taken };
}

/** Did the admin reorder anything beyond adding photos at the end and removing some? */
function orderChanged(baseImages, localEntries) {
  const localIds = localEntries.filter((e) => e.kind === 'image').map((e) => e.imageId);
  const baseIds = baseImages.map((e) => e.imageId).filter((id) => localIds.includes(id));
  if (baseIds.join() !== localIds.join()) return true;
  const firstUpload = localEntries.findIndex((e) => e.kind !== 'image');
  return firstUpload >= 0 && localEntries.slice(firstUpload).some((e) => e.kind === 'image');
}

/**
 * One gallery. Images keep the caption the admin typed (else the server's); images the admin
 * removed stay removed; images gone from the server are gone; new photos (uploads) are kept.
 * If the admin reordered the gallery their order stays and images new on the server go last;
 * otherwise the server's order stands, followed by the new photos.
 *
 * @param {PhotoEntry[]} baseImages the gallery's images as the editor loaded them, in order
 * @param {PhotoEntry[]} localEntries the gallery on screen (images and uploads), in order
 * @param {PhotoEntry[]} serverImages the gallery's images on the server now, in order
 * @returns {{entries: PhotoEntry[], keptCaptions: string[], takenCaptions: number,
 *   keptOrder: boolean, removed: number}} keptCaptions: keys of images whose caption is the
 *   admin's and differs from the server's; takenCaptions: how many untouched captions the
 *   other save changed; removed: images the admin removed that the server still has.
 */
export function mergeGallery(baseImages, localEntries, serverImages) {
  const baseById = new Map(baseImages.map((e) => [e.imageId, e]));
  const localById = new Map(localEntries.filter((e) => e.kind === 'image')
    .map((e) => [e.imageId, e]));
  const removedHere = (id) => baseById.has(id) && !localById.has(id);
  const keptCaptions = [];
  let takenCaptions = 0;
  const merged = new Map(); // imageId -> entry on the server's terms, with the admin's caption
  for (const image of serverImages) {
    if (removedHere(image.imageId)) continue;
    const mine = localById.get(image.imageId);
    const was = baseById.get(image.imageId);
    const edited = mine && was && mine.caption !== was.caption;
    const caption = edited ? mine.caption : image.caption;
    if (edited && caption !== image.caption) keptCaptions.push(image.key);
    if (!edited && was && was.caption !== image.caption) takenCaptions += 1;
    merged.set(image.imageId, { ...image, caption });
  }
  const removed = serverImages.filter((image) => removedHere(image.imageId)).length;
  const uploads = localEntries.filter((e) => e.kind !== 'image');
  const keptOrder = orderChanged(baseImages, localEntries);
  let entries;
  if (keptOrder) {
    entries = localEntries.flatMap((e) => {
      if (e.kind !== 'image') return [e];
      const image = merged.get(e.imageId);
      merged.delete(e.imageId);
      return image ? [image] : [];
    });
    entries.push(...merged.values()); // new on the server: after the admin's order
  } else {
    entries = [...merged.values(), ...uploads];
  }
  return { entries, keptCaptions, takenCaptions, keptOrder, removed };
}
