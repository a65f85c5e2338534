// The console: sign-in, the hash router and the pages. Each page is a
// function that fills `main` from the admin API; every action reports its
// result or error in words in the status line.
import * as api from './api.js';
import { h, clear } from './dom.js';
import * as pages from './pages.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const status = document.getElementById('status');

export function say(text, kind = 'ok') {
  status.textContent = text;
  status.className = 'status ' + kind;
}

export function fail(what, e) {
  if (e instanceof api.ApiError && e.status === 401) {
    signedOut('Your session has ended; sign in again.');
    return;
  }
  const code = e && e.code ? ' (' + e.code + ')' : '';
  say(what + ' failed: ' + (e && e.message ? e.message : String(e)) + code, 'error');
}

// A confirmation for every action: the native <dialog>, so the keyboard
// and focus work as in any modal; resolves true only on Confirm.
export function confirmAction(text, label = 'Confirm') {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = label;
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.returnValue = '';
    dlg.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}

const routes = {
  overview: pages.overview,
  licenses: pages.licenses,
  license: pages.license,
  issue: pages.issue,
  customers: pages.customers,
  plans: pages.plans,
  audit: pages.audit,
  notifications: pages.notifications,
  keys: pages.keys,
};

let signedIn = false;
let seq = 0;

async function route() {
  if (!signedIn) return;
  const [, name = 'overview', ...rest] = location.hash.replace(/^#/, '').split('/');
  const page = routes[name] || pages.overview;
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === '#/' + (routes[name] ? name : 'overview')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const mine = ++seq;
  clear(main).append(h('p', { class: 'muted', 'aria-busy': 'true' }, 'Loading…'));
  const view = h('div', { class: 'page' });
  try {
    await page(view, rest.map(decodeURIComponent), { say, fail, confirmAction, stale: () => mine !== seq });
  } catch (e) {
    fail('Loading the page', e);
    view.append(h('p', { class: 'empty' }, 'This page could not be loaded.'));
  }
  if (mine === seq) clear(main).append(view);
}

function signedOut(message) {
  signedIn = false;
  nav.hidden = true;
  clear(who);
  const token = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off',
                             required: true, spellcheck: 'false' });
  const form = h('form', { class: 'card signin', id: 'signin' },
    h('h1', {}, 'Sign in'),
    h('p', {}, 'Paste an admin token (licctl token create NAME). It is sent once to open a session and is not stored by this browser.'),
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'Admin token'), token),
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = token.value.trim();
    token.value = '';
    if (!value) { say('Enter an admin token.', 'error'); return; }
    try {
      const s = await api.signIn(value);
      say('Signed in as ' + s.actor + '.');
      signedInAs(s);
    } catch (e) {
      say(e.status === 401 ? 'That token is not an admin token of this server.'
        : 'Sign-in failed: ' + e.message, 'error');
      token.focus();
    }
  });
  clear(main).append(form);
  if (message) say(message, 'error');
  token.focus();
}

function signedInAs(s) {
  signedIn = true;
  nav.hidden = false;
  const out = h('button', { type: 'button', id: 'signout' }, 'Sign out');
  out.addEventListener('click', async () => {
    try {
      await api.signOut();
      say('Signed out.');
    } catch (e) {
      say('Sign-out failed: ' + e.message, 'error');
    }
    signedOut();
  });
  clear(who).append(h('span', {}, 'Signed in as ', h('strong', {}, s.actor)), ' ', out);
  if (!location.hash || location.hash === '#' || location.hash === '#/') {
    keepStatus = true;
    location.hash = '#/overview';
  }
  else route();
}

// A message stays with the page it belongs to: moving on clears it, unless
// the console itself moved on after the action (sign-in).
let keepStatus = false;
window.addEventListener('hashchange', () => {
  if (!keepStatus) say('');
  keepStatus = false;
  route();
});
// The skip link moves focus to the content; the hash is the router's.
document.querySelector('.skip').addEventListener('click', (ev) => {
  ev.preventDefault();
  main.focus();
});

(async () => {
  try {
    const s = await api.resume();
    if (s) signedInAs(s);
    else signedOut();
  } catch (e) {
    clear(main).append(h('p', { class: 'empty' }, 'licd cannot be reached: ' + e.message));
  }
})();
