/**
 * The home editor: the home's fields and its galleries. New photos start uploading as soon as
 * they are chosen; "Save" waits for them and then sends ONE finalize with the whole desired
 * content (fields, every gallery in order, captions) under an Idempotency-Key.
 */
import { errorText } from './messages.js';
import { createGallery } from './gallery.js';
import { h, replaceChildren, uid } from './dom.js';
import * as draft from './draft.js';
import { mergeFields, mergeGallery } from './merge.js';

export const DEFAULT_GALLERIES = ['facilities', 'rooms', 'exterior'];
// The server's gallery-name rule (server/api/schemas.py SLUG_PATTERN).
const SLUG = /^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$/;
const FIELDS = [
  ['name', 'Name', 'input'],
  ['address', 'Address', 'input'],
  ['description', 'Description', 'textarea'],
];
/** Network errors and 5xx of a save are retried this many times with the same key. */
const SAVE_ATTEMPTS = 4;
/** upload_not_ready (the server is still checking a photo) is waited out this many times. */
const NOT_READY_WAITS = 30;

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

function newKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/**
 * @param {object} ctx
 * @param {ReturnType<import('./api.js').createApi>} ctx.api
 * @param {import('../uploader.js').GalleryUploader} ctx.uploader
 * @param {object} ctx.home the home as the server sent it
 * @param {() => void} ctx.onBack
 * @returns {{el: HTMLElement, destroy: () => void}}
 */
export function createEditor(ctx) {
  const { api, uploader } = ctx;
  let home = ctx.home;
  const homeId = String(home.id);
  const galleries = new Map(); // name -> {entries, view}
  const byItem = new Map(); // uploader item id -> entry
  let pendingSave = null; // {body, key}: a save whose outcome we do not know yet
  let saving = false;

  const fieldInputs = {};
  const fieldNotes = {}; // after a reload: what the server has where the admin's edit was kept
  const form = h('form', { className: 'fields', onsubmit: (ev) => ev.preventDefault() },
    FIELDS.map(([name, label, tag]) => {
      const id = uid(name);
      fieldNotes[name] = h('small', { id: `${id}-note`, className: 'kept-note', hidden: true });
      fieldInputs[name] = h(tag, { id, name, value: home[name] ?? '',
        'aria-describedby': fieldNotes[name].id,
        ...(tag === 'textarea' ? { rows: 3 } : { type: 'text' }) });
      return h('div', { className: 'field' }, h('label', { htmlFor: id }, label),
        fieldInputs[name], fieldNotes[name]);
    }));

  const galleriesEl = h('div', { className: 'galleries' });
  const newGalleryInput = h('input', { type: 'text', id: uid('gallery'),
    placeholder: 'e.g. garden', pattern: SLUG.source, 'aria-describedby': 'gallery-hint' });
  const addGalleryForm = h('form', { className: 'add-gallery', onsubmit: (ev) => {
    ev.preventDefault();
    const name = newGalleryInput.value.trim().toLowerCase();
    if (!SLUG.test(name)) {
      showMessage('error', 'A gallery name uses lower-case letters, digits, "-" or "_".');
      return;
    }
    if (galleries.has(name)) {
      showMessage('error', `There is already a gallery "${name}".`);
      return;
    }
    newGalleryInput.value = '';
    ensureGallery(name).view.el.scrollIntoView({ block: 'nearest' });
  } },
  h('label', { htmlFor: newGalleryInput.id }, 'New gallery'), newGalleryInput,
  h('button', { type: 'submit' }, 'Add gallery'),
  h('small', { id: 'gallery-hint' }, 'lower-case letters, digits, - and _'));

  const overallBar = h('progress', { max: 100, value: 0, 'aria-label': 'All uploads' });
  const overallText = h('span', { className: 'overall-text' });
  const message = h('div', { className: 'message', role: 'alert', hidden: true });
  const saveButton = h('button', { type: 'button', className: 'primary save',
    onclick: () => save() }, 'Save');
  const versionText = h('span', { className: 'version' });
  const bar = h('div', { className: 'savebar' }, h('div', { className: 'overall' },
    overallBar, overallText), versionText, saveButton);

  const el = h('div', { className: 'editor', dataset: { homeId } },
    h('p', {}, h('a', { href: '#/homes', onclick: (ev) => { ev.preventDefault(); ctx.onBack(); } },
      '← All homes')),
    h('h2', {}, 'Home'), form, message,
    h('h2', {}, 'Galleries'), galleriesEl, addGalleryForm, bar);

  function showMessage(kind, text, action) {
    message.hidden = !text;
    message.className = `message ${kind}`;
    message.dataset.kind = kind;
    replaceChildren(message, h('span', {}, text), action || null);
  }

  function itemOf(entry) {
    return entry.itemId ? uploader.get(entry.itemId) || null : null;
  }

  function ensureGallery(name) {
    if (galleries.has(name)) return galleries.get(name);
    const g = { name, entries: [] };
    g.view = createGallery({
      name,
      entries: g.entries,
      itemOf,
      onFiles: (files) => addFiles(name, files),
      onMove: (entry, delta) => move(g, entry, delta),
      onDrop: (fromKey, toKey, after) => dropOn(g, fromKey, toKey, after),
      onRemove: (entry) => removeEntry(g, entry),
      onRetry: (entry) => uploader.retry(entry.itemId),
      onCancel: (entry) => uploader.cancel(entry.itemId),
      onCaption: (entry, caption) => {
        entry.caption = caption;
        if (entry.kind === 'upload') draft.patchPhoto(entry.key, { caption });
      },
    });
    galleries.set(name, g);
    galleriesEl.append(g.view.el);
    g.view.sync();
    return g;
  }

  function serverEntry(image) {
    return { key: `img-${image.id}`, kind: 'image', imageId: image.id,
      name: image.caption || `photo ${image.id}`, caption: image.caption || '',
      thumbUrl: image.thumbnail_url || image.url || '' };
  }

  function uploadEntry(gallery, file, { key = newKey(), caption = '', uploadUrl = null } = {}) {
    const item = uploader.add(file, { homeId, gallery, uploadUrl });
    const entry = { key, kind: 'upload', itemId: item.id, name: file.name, caption, file,
      thumbUrl: URL.createObjectURL(file) };
    byItem.set(item.id, entry);
    return entry;
  }

  function persistOrder(g) {
    g.entries.forEach((entry, order) => {
      if (entry.kind === 'upload') draft.patchPhoto(entry.key, { order });
    });
  }

  function addFiles(name, files) {
    const g = ensureGallery(name);
    for (const file of files) {
      const entry = uploadEntry(name, file);
      g.entries.push(entry);
      draft.putPhoto({ key: entry.key, homeId, gallery: name, file, uploadUrl: null,
        caption: '', order: g.entries.length - 1 });
    }
    g.view.sync();
    refreshOverall();
  }

  function move(g, entry, delta) {
    const from = g.entries.indexOf(entry);
    const to = from + delta;
    if (from < 0 || to < 0 || to >= g.entries.length) return;
    g.entries.splice(from, 1);
    g.entries.splice(to, 0, entry);
    g.view.sync();
    g.view.focusCard(entry.key, delta < 0 ? '.up:not(:disabled), .down' : '.down:not(:disabled), .up');
    persistOrder(g);
  }

  function dropOn(g, fromKey, toKey, after) {
    const from = g.entries.findIndex((e) => e.key === fromKey);
    if (from < 0) return;
    const [entry] = g.entries.splice(from, 1);
    let to = g.entries.findIndex((e) => e.key === toKey);
    if (to < 0) to = g.entries.length;
    g.entries.splice(after ? to + 1 : to, 0, entry);
    g.view.sync();
    persistOrder(g);
  }

  function dropUpload(entry) {
    byItem.delete(entry.itemId);
    if (entry.thumbUrl?.startsWith('blob:')) URL.revokeObjectURL(entry.thumbUrl);
    draft.deletePhoto(entry.key);
  }

  function removeEntry(g, entry) {
    const index = g.entries.indexOf(entry);
    if (index < 0) return;
    g.entries.splice(index, 1);
    if (entry.kind === 'upload') {
      uploader.remove(entry.itemId); // terminates the upload on the server
      dropUpload(entry);
    }
    g.view.sync();
    persistOrder(g);
    refreshOverall();
  }

  function uploadEntries() {
    return [...galleries.values()].flatMap((g) => g.entries)
      .filter((e) => e.kind === 'upload');
  }

  function refreshOverall() {
    let accepted = 0;
    let total = 0;
    const counts = {};
    for (const entry of uploadEntries()) {
      const item = itemOf(entry);
      if (!item) continue;
      counts[item.state] = (counts[item.state] || 0) + 1;
      if (item.state === 'cancelled') continue;
      total += item.size;
      accepted += ['processing', 'ready'].includes(item.state) ? item.size
        : Math.min(item.accepted, item.size);
    }
    const percent = total ? Math.floor((100 * accepted) / total) : 100;
    overallBar.value = percent;
    const sending = (counts.uploading || 0) + (counts.retrying || 0) + (counts.stalled || 0);
    const waiting = sending + (counts.queued || 0);
    const parts = [];
    if (total) parts.push(`${percent} % uploaded`);
    if (sending) parts.push(`${sending} uploading`);
    if (counts.queued) parts.push(`${counts.queued} waiting`);
    if (counts.processing) parts.push(`${counts.processing} being checked`);
    if (counts.ready) parts.push(`${counts.ready} ready`);
    if (counts.failed) parts.push(`${counts.failed} failed`);
    overallText.textContent = parts.join(', ');
    overallBar.hidden = !total;
    el.dataset.uploading = String(waiting + (counts.processing || 0));
  }

  const unsubscribe = uploader.subscribe((item) => {
    const entry = byItem.get(item.id);
    if (!entry) return;
    const g = galleries.get(item.gallery);
    g?.view.update(entry);
    if (item.uploadUrl !== entry.uploadUrl) {
      entry.uploadUrl = item.uploadUrl;
      draft.patchPhoto(entry.key, { uploadUrl: item.uploadUrl });
    }
    refreshOverall();
  });

  function imagesIn(someHome, name) {
    return [...((someHome.galleries || {})[name] || [])]
      .sort((a, b) => (a.position ?? 0) - (b.position ?? 0)).map(serverEntry);
  }

  function galleryNames(next) {
    return [...new Set([...Object.keys(next.galleries || {}), ...DEFAULT_GALLERIES,
      ...galleries.keys()])];
  }

  function fieldValues() {
    return Object.fromEntries(Object.entries(fieldInputs)
      .map(([name, input]) => [name, input.value]));
  }

  /** Mark a field whose value on screen is the admin's, not the server's (null: unmark). */
  function markField(name, serverValue) {
    const note = fieldNotes[name];
    note.hidden = serverValue === null;
    note.textContent = serverValue === null ? ''
      : `Your edit, kept. Saved version: "${serverValue || '(empty)'}"`;
    note.parentElement.classList.toggle('kept', serverValue !== null);
  }

  function showVersion(next) {
    home = next;
    versionText.textContent = `version ${home.version}`;
    el.dataset.version = String(home.version);
  }

  /** Show the home as the server has it, keeping photos that are not attached yet. */
  function loadHome(next) {
    showVersion(next);
    for (const [name, input] of Object.entries(fieldInputs)) {
      input.value = home[name] ?? '';
      markField(name, null);
    }
    for (const name of galleryNames(home)) {
      const g = ensureGallery(name);
      const pending = g.entries.filter((e) => e.kind === 'upload');
      g.entries.splice(0, g.entries.length, ...imagesIn(home, name), ...pending);
      g.view.sync();
    }
    refreshOverall();
  }

  /**
   * Take the server's newer version under the admin's unsaved edits (see merge.js): their
   * fields, captions, order and removals stay, marked where the server has something else;
   * the rest is the server's. Says in words what was kept and what was taken.
   */
  function rebase(next) {
    const base = home;
    const fields = mergeFields(base, fieldValues(), next);
    showVersion(next);
    for (const [name, input] of Object.entries(fieldInputs)) {
      input.value = fields.values[name];
      const differs = fields.kept.includes(name) && (next[name] ?? '') !== input.value;
      markField(name, differs ? next[name] ?? '' : null);
    }
    let captions = 0;
    let theirCaptions = 0;
    let removed = 0;
    const reordered = [];
    for (const name of galleryNames(next)) {
      const g = ensureGallery(name);
      const merged = mergeGallery(imagesIn(base, name), g.entries, imagesIn(next, name));
      for (const entry of merged.entries) entry.kept = merged.keptCaptions.includes(entry.key);
      g.entries.splice(0, g.entries.length, ...merged.entries);
      g.view.sync();
      persistOrder(g);
      captions += merged.keptCaptions.length;
      theirCaptions += merged.takenCaptions;
      removed += merged.removed;
      if (merged.keptOrder) reordered.push(name);
    }
    refreshOverall();
    const kept = [...fields.kept];
    if (captions) kept.push(`${captions} caption(s)`);
    if (reordered.length) kept.push(`the order of ${reordered.join(', ')}`);
    if (removed) kept.push(`${removed} removal(s)`);
    const taken = [...fields.taken];
    if (theirCaptions) taken.push(`${theirCaptions} caption(s)`);
    return { kept, taken, clashes: fields.clashes };
  }

  function rebaseText({ kept, taken, clashes }) {
    const parts = [`Reloaded version ${home.version}.`];
    if (kept.length) parts.push(`Kept your changes: ${kept.join(', ')}.`);
    if (taken.length) parts.push(`Took the other changes: ${taken.join(', ')}.`);
    if (clashes.length) parts.push(`Both changed ${clashes.join(', ')}: yours is kept, `
      + 'the saved version is shown below it.');
    if (uploadEntries().length) parts.push('Your new photos are still here.');
    parts.push('Check, then save again.');
    return parts.join(' ');
  }

  /** Photos kept from before a reload: add them again; their uploads resume. */
  async function restoreDraft() {
    const photos = await draft.loadPhotos(homeId);
    if (!photos.length) return;
    for (const photo of photos) {
      const g = ensureGallery(photo.gallery);
      if (g.entries.some((e) => e.key === photo.key)) continue;
      const entry = uploadEntry(photo.gallery, photo.file, photo);
      g.entries.push(entry);
    }
    for (const g of galleries.values()) g.view.sync();
    refreshOverall();
    showMessage('info', `${photos.length} unsaved photo(s) from before were picked up again; `
      + 'their uploads continue where they stopped.');
  }

  function buildBody() {
    const body = { expected_version: home.version, home: fieldValues(), galleries: {} };
    for (const [name, g] of galleries) {
      const known = home.galleries && name in home.galleries;
      if (!known && g.entries.length === 0) continue; // nothing to say about it
      body.galleries[name] = g.entries.map((entry) => {
        const ref = entry.kind === 'image' ? { image_id: entry.imageId }
          : { upload_id: itemOf(entry).uploadId };
        return { ...ref, caption: entry.caption || '' };
      });
    }
    return body;
  }

  function setSaving(on, text) {
    saving = on;
    saveButton.disabled = on;
    saveButton.setAttribute('aria-busy', String(on));
    saveButton.textContent = on ? text || 'Saving…' : 'Save';
  }

  async function save() {
    if (saving) return;
    setSaving(true, 'Waiting for uploads…');
    try {
      const pending = uploadEntries().map((e) => e.itemId);
      const unsettled = pending.filter((id) => !['ready', 'failed', 'cancelled']
        .includes(uploader.get(id)?.state));
      if (unsettled.length) {
        showMessage('info', `Waiting for ${unsettled.length} photo(s) to finish uploading; `
          + 'saving starts by itself.');
        await uploader.whenSettled(pending);
      }
      const broken = uploadEntries().filter((e) => itemOf(e)?.state !== 'ready');
      if (broken.length) {
        showMessage('error', `${broken.length} photo(s) did not upload (${broken
          .map((e) => e.name).slice(0, 3).join(', ')}${broken.length > 3 ? ', …' : ''}). `
          + 'Retry or remove them, then save again.');
        return;
      }
      setSaving(true, 'Saving…');
      await finalize();
    } finally {
      setSaving(false);
    }
  }

  async function finalize() {
    let failures = 0;
    let notReady = 0;
    for (;;) {
      const body = JSON.stringify(buildBody());
      // The same save (same body) keeps its key until the server gives a definite answer, so
      // a save whose answer was lost on the way is never applied twice.
      if (!pendingSave || pendingSave.body !== body) pendingSave = { body, key: newKey() };
      try {
        const saved = await api.finalize(homeId, body, pendingSave.key);
        pendingSave = null;
        await afterSave(saved);
        return;
      } catch (err) {
        if (err.status === 0 || err.status >= 500) {
          failures += 1;
          if (failures < SAVE_ATTEMPTS) {
            showMessage('info', `${errorText(err)} Trying again…`);
            await sleep(1000 * 2 ** failures);
            continue;
          }
          showMessage('error', `${errorText(err)} Press Save to try again; it is safe, the `
            + 'same save is never applied twice.');
          return;
        }
        pendingSave = null;
        if (err.code === 'upload_not_ready' && notReady < NOT_READY_WAITS) {
          notReady += 1;
          showMessage('info', errorText(err));
          await sleep(1000);
          continue;
        }
        if (err.code === 'version_conflict') {
          showMessage('error', errorText(err), h('button', { type: 'button',
            className: 'reload', onclick: () => reload() }, 'Reload'));
          return;
        }
        showMessage('error', errorText(err));
        return;
      }
    }
  }

  async function afterSave(saved) {
    const next = saved && saved.galleries ? saved : await api.getHome(homeId);
    for (const entry of uploadEntries()) {
      uploader.forget(entry.itemId);
      dropUpload(entry);
    }
    for (const g of galleries.values()) {
      g.entries.splice(0, g.entries.length, ...g.entries.filter((e) => e.kind !== 'upload'));
    }
    await draft.clearHome(homeId);
    loadHome(next);
    showMessage('success', `Saved. The home is now at version ${next.version}.`);
  }

  async function reload() {
    try {
      showMessage('info', rebaseText(rebase(await api.getHome(homeId))));
    } catch (err) {
      showMessage('error', errorText(err));
    }
  }

  loadHome(home);
  restoreDraft();

  return {
    el,
    save,
    destroy() {
      unsubscribe();
      for (const entry of uploadEntries()) {
        // The uploads stay resumable: leaving the page is not cancelling them.
        uploader.forget(entry.itemId);
        if (entry.thumbUrl?.startsWith('blob:')) URL.revokeObjectURL(entry.thumbUrl);
      }
    },
  };
}
