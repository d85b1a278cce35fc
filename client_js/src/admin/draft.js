/**
 * Unsaved photos of a home, kept in IndexedDB with their bytes so that a reload (or a phone
 * killing the tab) picks every upload up again without the admin choosing 30 files anew.
 * tus-js-client's own localStorage entry then finds the upload URL and resumes at the server's
 * offset. Without IndexedDB (private mode) this quietly keeps nothing.
 */

const DB_NAME = 'tusgallery-admin';
const STORE = 'draft-photos';

let dbPromise = null;

function open() {
  if (!dbPromise) {
    dbPromise = new Promise((resolve) => {
      if (typeof indexedDB === 'undefined') return resolve(null);
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => {
        const store = req.result.createObjectStore(STORE, { keyPath: 'key' });
        store.createIndex('homeId', 'homeId');
      };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => resolve(null);
      req.onblocked = () => resolve(null);
      return undefined;
    });
  }
  return dbPromise;
}

async function run(mode, fn) {
  const db = await open();
  if (!db) return null;
  return new Promise((resolve) => {
    const tx = db.transaction(STORE, mode);
    const result = fn(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(result && 'result' in result ? result.result : null);
    tx.onerror = () => resolve(null);
    tx.onabort = () => resolve(null);
  });
}

/**
 * @typedef {object} DraftPhoto
 * @property {string} key stable id of the photo in this draft
 * @property {string} homeId
 * @property {string} gallery
 * @property {File} file
 * @property {string|null} uploadUrl
 * @property {string} caption
 * @property {number} order position within its gallery
 */

/** @param {DraftPhoto} photo */
export function putPhoto(photo) {
  return run('readwrite', (store) => store.put(photo));
}

/** Update some fields of a stored photo (no-op when it is not stored). */
export async function patchPhoto(key, fields) {
  const db = await open();
  if (!db) return;
  await new Promise((resolve) => {
    const tx = db.transaction(STORE, 'readwrite');
    const store = tx.objectStore(STORE);
    const get = store.get(key);
    get.onsuccess = () => { if (get.result) store.put({ ...get.result, ...fields }); };
    tx.oncomplete = resolve;
    tx.onerror = resolve;
    tx.onabort = resolve;
  });
}

export function deletePhoto(key) {
  return run('readwrite', (store) => store.delete(key));
}

/** @returns {Promise<DraftPhoto[]>} the stored photos of a home, in gallery order */
export async function loadPhotos(homeId) {
  const all = await run('readonly', (store) => store.index('homeId').getAll(String(homeId)));
  return (all || []).sort((a, b) => a.order - b.order);
}

export async function clearHome(homeId) {
  const photos = await loadPhotos(homeId);
  await Promise.all(photos.map((p) => deletePhoto(p.key)));
}
