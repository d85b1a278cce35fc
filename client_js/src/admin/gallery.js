/**
 * One gallery of the home editor: a drop zone / file picker, and the ordered list of photo cards
 * (thumbnail, progress from accepted bytes, state in words, caption, reorder, retry/cancel,
 * remove). Cards are updated in place so that progress ticks do not steal focus from a caption.
 */
import { h, uid } from './dom.js';

const STATE_WORDS = {
  queued: 'Waiting to upload',
  uploading: 'Uploading',
  retrying: 'Connection trouble, retrying',
  stalled: 'Connection stalled, reconnecting',
  processing: 'Uploaded, the server is checking it',
  ready: 'Uploaded',
  failed: 'Failed',
  cancelled: 'Cancelled',
  saved: 'Saved',
};

/**
 * @param {object} item uploader item (or null for a photo already in the home)
 * @returns {{state: string, percent: number, text: string}}
 */
export function describeEntry(item) {
  if (!item) return { state: 'saved', percent: 100, text: STATE_WORDS.saved };
  const percent = item.size ? Math.floor((100 * Math.min(item.accepted, item.size)) / item.size)
    : 100;
  let text = STATE_WORDS[item.state] || item.state;
  if (item.state === 'uploading' || item.state === 'queued' || item.state === 'stalled') {
    text = `${text} — ${percent} %`;
  }
  if (item.state === 'retrying' && item.lastError) text = `${text} (${item.lastError})`;
  if (item.state === 'failed') text = `${text}: ${item.error}`;
  return { state: item.state, percent: ['processing', 'ready'].includes(item.state) ? 100 : percent,
    text };
}

/**
 * @param {object} opts
 * @param {string} opts.name gallery slug
 * @param {object[]} opts.entries ordered entries (mutated by the editor only)
 * @param {(files: File[]) => void} opts.onFiles
 * @param {(entry: object, delta: number) => void} opts.onMove
 * @param {(fromKey: string, toKey: string, after: boolean) => void} opts.onDrop
 * @param {(entry: object) => void} opts.onRemove
 * @param {(entry: object) => void} opts.onRetry
 * @param {(entry: object) => void} opts.onCancel
 * @param {(entry: object, caption: string) => void} opts.onCaption
 * @param {(entry: object) => object|null} opts.itemOf uploader item of an entry
 */
export function createGallery(opts) {
  const inputId = uid('files');
  const list = h('ol', { className: 'cards', 'aria-label': `Photos in ${opts.name}` });
  const count = h('span', { className: 'count' });
  const input = h('input', {
    id: inputId, type: 'file', multiple: true, accept: 'image/*', className: 'file-input',
    dataset: { gallery: opts.name },
    onchange: () => {
      const files = [...input.files];
      input.value = '';
      if (files.length) opts.onFiles(files);
    },
  });
  const zone = h('div', { className: 'dropzone' },
    h('label', { htmlFor: inputId, className: 'button' }, 'Add photos'),
    input,
    h('span', { className: 'hint' }, ' or drop image files here'));
  zone.addEventListener('dragover', (ev) => {
    if (ev.dataTransfer && [...ev.dataTransfer.types].includes('Files')) {
      ev.preventDefault();
      zone.classList.add('over');
    }
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (ev) => {
    zone.classList.remove('over');
    const files = [...(ev.dataTransfer?.files || [])].filter((f) => f.type.startsWith('image/'));
    if (files.length) {
      ev.preventDefault();
      opts.onFiles(files);
    }
  });

  const section = h('section', { className: 'gallery', dataset: { gallery: opts.name },
    'aria-labelledby': `${inputId}-title` },
  h('h3', { id: `${inputId}-title` }, opts.name, ' ', count), zone, list);

  const cards = new Map(); // entry key -> {el, parts}
  let dragKey = null;

  function card(first) {
    // The editor may put a fresh object under the same key (after a save or reload): the
    // card's controls act on whatever entry holds its key now.
    const entry = () => opts.entries.find((e) => e.key === first.key) || first;
    const label = first.name || `photo ${first.imageId ?? ''}`;
    const progress = h('progress', { max: 100, value: 0, 'aria-label': `Upload of ${label}` });
    const status = h('span', { className: 'status' });
    const caption = h('input', { type: 'text', value: first.caption || '', maxLength: 500,
      className: 'caption', 'aria-label': `Caption of ${label}`, placeholder: 'Caption',
      oninput: () => opts.onCaption(entry(), caption.value) });
    const keptNote = h('small', { className: 'kept-note', hidden: true },
      'Your caption, kept over the saved one');
    const button = (text, aria, onclick, cls = '') => h('button', { type: 'button',
      className: `small ${cls}`, 'aria-label': `${aria} ${label}`, onclick }, text);
    const retry = button('Retry', 'Retry', () => opts.onRetry(entry()));
    const cancel = button('Stop', 'Stop uploading', () => opts.onCancel(entry()));
    const img = h('img', { className: 'thumb', alt: '', loading: 'lazy', decoding: 'async',
      src: first.thumbUrl || '' });
    const el = h('li', { className: 'card', draggable: true, dataset: { key: first.key } },
      img,
      h('div', { className: 'info' },
        h('div', { className: 'name', title: label }, label),
        progress, status, caption, keptNote),
      h('div', { className: 'actions' },
        button('↑', 'Move up', () => opts.onMove(entry(), -1), 'up'),
        button('↓', 'Move down', () => opts.onMove(entry(), 1), 'down'),
        retry, cancel,
        button('Remove', 'Remove', () => opts.onRemove(entry()), 'danger')));
    el.addEventListener('dragstart', (ev) => {
      dragKey = first.key;
      ev.dataTransfer.effectAllowed = 'move';
      ev.dataTransfer.setData('text/plain', first.key);
      el.classList.add('dragging');
    });
    el.addEventListener('dragend', () => { el.classList.remove('dragging'); dragKey = null; });
    el.addEventListener('dragover', (ev) => {
      if (dragKey && dragKey !== first.key) ev.preventDefault();
    });
    el.addEventListener('drop', (ev) => {
      if (!dragKey || dragKey === first.key) return;
      ev.preventDefault();
      ev.stopPropagation();
      const box = el.getBoundingClientRect();
      opts.onDrop(dragKey, first.key, ev.clientY > box.top + box.height / 2);
    });
    return { el, parts: { progress, status, retry, cancel, img, caption, keptNote } };
  }

  function update(entry) {
    const c = cards.get(entry.key);
    if (!c) return;
    const item = opts.itemOf(entry);
    const { state, percent, text } = describeEntry(item);
    c.el.dataset.state = state;
    c.parts.progress.value = percent;
    c.parts.progress.hidden = state === 'saved';
    c.parts.status.textContent = text;
    c.parts.retry.hidden = !(state === 'failed' || state === 'cancelled');
    c.parts.cancel.hidden = !['queued', 'uploading', 'retrying', 'stalled'].includes(state);
    if (entry.thumbUrl && c.parts.img.getAttribute('src') !== entry.thumbUrl) {
      c.parts.img.src = entry.thumbUrl;
    }
    // A reload can bring the server's caption; never overwrite what is being typed.
    const { caption } = c.parts;
    if (caption.value !== (entry.caption || '') && document.activeElement !== caption) {
      caption.value = entry.caption || '';
    }
    c.parts.keptNote.hidden = !entry.kept;
    c.el.classList.toggle('kept', Boolean(entry.kept));
  }

  /** Bring the list in line with opts.entries (order, additions, removals). */
  function sync() {
    const keys = new Set(opts.entries.map((e) => e.key));
    for (const [key, c] of cards) {
      if (!keys.has(key)) {
        c.el.remove();
        cards.delete(key);
      }
    }
    opts.entries.forEach((entry, index) => {
      let c = cards.get(entry.key);
      if (!c) {
        c = card(entry);
        cards.set(entry.key, c);
      }
      if (list.children[index] !== c.el) list.insertBefore(c.el, list.children[index] || null);
      c.el.querySelector('.up').disabled = index === 0;
      c.el.querySelector('.down').disabled = index === opts.entries.length - 1;
      update(entry);
    });
    count.textContent = `(${opts.entries.length})`;
  }

  return { el: section, sync, update, focusCard(key, selector) {
    cards.get(key)?.el.querySelector(selector)?.focus();
  } };
}
