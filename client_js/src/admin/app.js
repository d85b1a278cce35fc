/**
 * Entry of the admin page served at /admin/: log in with a bearer token, list and create homes,
 * and edit one (see editor.js). Routes live in the URL hash so that a reload lands on the same
 * home and its unfinished uploads resume.
 */
import { GalleryUploader } from '../uploader.js';
import { createApi } from './api.js';
import { createEditor } from './editor.js';
import { createPager } from './pager.js';
import { errorText } from './messages.js';
import { h, replaceChildren, uid } from './dom.js';

const TOKEN_KEY = 'tusgallery.token';
/** Optional JSON in localStorage tuning the uploader (chunkSize, concurrency, stallTimeoutMs). */
const UPLOADER_KEY = 'tusgallery.uploader';
/** Optional homes per page of the list (1-200; the server's default 50 when unset). */
const PAGE_KEY = 'tusgallery.homesPage';

const root = document.getElementById('app');
const userBar = document.getElementById('user');

function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || localStorage.getItem(TOKEN_KEY);
}

function setToken(token, remember) {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  if (token) (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
}

const api = createApi({
  getToken,
  onUnauthorized: () => {
    setToken(null);
    go('#/login', 'Your token was not accepted. Log in again.');
  },
});

function uploaderOptions() {
  try {
    return JSON.parse(localStorage.getItem(UPLOADER_KEY) || '{}') || {};
  } catch {
    return {};
  }
}

const uploader = new GalleryUploader({
  endpoint: new URL('/files/', location.href).href,
  statusUrl: (id) => new URL(`/api/uploads/${encodeURIComponent(id)}`, location.href).href,
  token: () => getToken() || '',
  ...uploaderOptions(),
});
uploader.subscribe((item) => {
  if (item.state === 'failed' && item.errorStatus === 401) api.request('GET', '/api/homes')
    .catch(() => {}); // lets onUnauthorized send the admin to the login form
});

let current = null; // {destroy} of the view on screen
let flash = null;

function go(hash, message) {
  flash = message || null;
  if (location.hash === hash) route();
  else location.hash = hash;
}

function show(view, title) {
  if (current?.destroy) current.destroy();
  current = view;
  document.title = `${title} · tusgallery admin`;
  replaceChildren(root, flash ? h('div', { className: 'message info', role: 'status' }, flash)
    : null, view.el);
  flash = null;
  const heading = root.querySelector('h1, h2');
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

function renderUser() {
  replaceChildren(userBar, getToken()
    ? h('button', { type: 'button', className: 'small', onclick: () => {
      setToken(null);
      go('#/login', 'Logged out.');
    } }, 'Log out')
    : null);
}

function loginView() {
  const tokenId = uid('token');
  const rememberId = uid('remember');
  const token = h('input', { id: tokenId, type: 'password', name: 'token', required: true,
    autocomplete: 'current-password', spellcheck: false });
  const remember = h('input', { id: rememberId, type: 'checkbox', name: 'remember' });
  const error = h('p', { className: 'message error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit', className: 'primary' }, 'Log in');
  const form = h('form', { className: 'login', onsubmit: async (ev) => {
    ev.preventDefault();
    button.disabled = true;
    error.hidden = true;
    try {
      const value = token.value.trim();
      if (!(await api.checkToken(value))) {
        error.textContent = 'That token is not valid.';
        error.hidden = false;
        return;
      }
      setToken(value, remember.checked);
      go('#/homes');
    } catch (err) {
      error.textContent = errorText(err);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  } },
  h('h2', {}, 'Log in'),
  h('div', { className: 'field' }, h('label', { htmlFor: tokenId }, 'Access token'), token),
  h('div', { className: 'check' }, remember,
    h('label', { htmlFor: rememberId }, 'Remember on this device')),
  error, button);
  return { el: form };
}

function homeItem(home) {
  const count = Object.values(home.galleries || {}).reduce((n, g) => n + g.length, 0);
  return h('li', {}, h('a', { href: `#/homes/${encodeURIComponent(home.id)}` },
    h('strong', {}, home.name || `Home ${home.id}`)),
  h('span', { className: 'muted' }, ` ${home.address || ''} · ${count} photo(s)`));
}

function homesView() {
  const list = h('ul', { className: 'homes', 'aria-busy': 'true' });
  const status = h('p', { className: 'message', role: 'status' }, 'Loading homes…');
  const fields = {};
  const field = (name, label, tag = 'input') => {
    const id = uid(name);
    fields[name] = h(tag, { id, name, ...(tag === 'input' ? { type: 'text' } : { rows: 2 }),
      required: name === 'name' });
    return h('div', { className: 'field' }, h('label', { htmlFor: id }, label), fields[name]);
  };
  const createError = h('p', { className: 'message error', role: 'alert', hidden: true });
  const create = h('form', { className: 'create-home', onsubmit: async (ev) => {
    ev.preventDefault();
    createError.hidden = true;
    const submit = create.querySelector('button');
    submit.disabled = true;
    try {
      const home = await api.createHome({ name: fields.name.value.trim(),
        address: fields.address.value.trim(), description: fields.description.value.trim() });
      go(`#/homes/${encodeURIComponent(home.id)}`);
    } catch (err) {
      createError.textContent = errorText(err);
      createError.hidden = false;
    } finally {
      submit.disabled = false;
    }
  } },
  h('h2', {}, 'New home'), field('name', 'Name'), field('address', 'Address'),
  field('description', 'Description', 'textarea'), createError,
  h('button', { type: 'submit', className: 'primary' }, 'Create home'));

  const pager = createPager(api.listHomes, localStorage.getItem(PAGE_KEY));
  const more = h('button', { type: 'button', className: 'more', hidden: true,
    onclick: () => loadPage() }, 'Load more homes');
  let shown = 0;

  async function loadPage() {
    more.disabled = true;
    list.setAttribute('aria-busy', 'true');
    try {
      const homes = await pager.next();
      const first = list.children.length;
      list.append(...homes.map(homeItem));
      shown += homes.length;
      status.hidden = shown > 0;
      status.textContent = shown ? '' : 'No homes yet.';
      status.className = 'message';
      // Keyboard users land on the first home just added, not back at the top.
      if (first && homes.length) list.children[first].querySelector('a').focus();
    } catch (err) {
      status.textContent = errorText(err);
      status.className = 'message error';
      status.hidden = false;
    } finally {
      more.hidden = pager.done;
      more.disabled = false;
      list.setAttribute('aria-busy', 'false');
    }
  }
  loadPage();

  return { el: h('div', {}, h('h2', {}, 'Homes'), status, list, more, create) };
}

async function editorView(id) {
  const loading = { el: h('p', { role: 'status' }, 'Loading home…') };
  show(loading, 'Home');
  try {
    const home = await api.getHome(id);
    if (current !== loading) return; // navigated away meanwhile
    show(createEditor({ api, uploader, home, onBack: () => go('#/homes') }),
      home.name || `Home ${id}`);
  } catch (err) {
    if (current !== loading) return;
    show({ el: h('div', {}, h('p', { className: 'message error', role: 'alert' },
      errorText(err)), h('a', { href: '#/homes' }, '← All homes')) }, 'Home');
  }
}

function route() {
  renderUser();
  const hash = location.hash || '#/homes';
  if (!getToken()) {
    if (hash !== '#/login') {
      location.hash = '#/login';
      return;
    }
    show(loginView(), 'Log in');
    return;
  }
  const home = hash.match(/^#\/homes\/([^/]+)$/);
  if (home) editorView(decodeURIComponent(home[1]));
  else if (hash === '#/login') go('#/homes');
  else show(homesView(), 'Homes');
}

window.addEventListener('hashchange', route);
route();
