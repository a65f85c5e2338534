// The console's pages. Each fills `view` from the admin API; ctx carries
// say (result in words), fail (error in words), confirmAction and stale
// (the user has moved on to another page).
import * as api from './api.js';
import { h, clear, when, day, json, table, field } from './dom.js';
import { bars, columns } from './charts.js';

// The result codes that occur in the counts, VALID first, then by name: the
// list of codes is the server's (decide.h), so a new code shows up here
// without a change to the console.
const codesIn = (days) => [...new Set(days.flatMap((d) => Object.keys(d.codes)))]
  .sort((a, b) => (b === 'VALID') - (a === 'VALID') || a.localeCompare(b));

const link = (href, text) => h('a', { href }, text);
const licLink = (id, text) => link('#/license/' + encodeURIComponent(id), text || id.slice(0, 8) + '…');
const badge = (st) => h('span', { class: 'badge ' + st }, st);

function button(text, onClick, attrs = {}) {
  const b = h('button', Object.assign({ type: 'button' }, attrs), text);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try { await onClick(); } finally { b.disabled = false; }
  });
  return b;
}

function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

// "k=v" lines (or commas) into a limits object; throws on a bad line.
function parseLimits(text) {
  const out = {};
  for (const part of text.split(/[\n,]/).map((x) => x.trim()).filter(Boolean)) {
    const m = /^([a-z0-9][a-z0-9_.-]*)\s*=\s*(\d+)$/.exec(part);
    if (!m) throw new Error('"' + part + '" is not name=number');
    out[m[1]] = Number(m[2]);
  }
  return out;
}
const limitsText = (o) => Object.entries(o || {}).map(([k, v]) => k + '=' + v).join('\n');
const list = (text) => text.split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

// A keyset-paged list: load(params, cursor) → {rows, next}; render(rows).
function pager(view, load, render, ctx) {
  const body = h('div', { 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', disabled: true }, '← Previous');
  const next = h('button', { type: 'button', disabled: true }, 'Next →');
  const pos = h('span', { class: 'muted' });
  const stack = [];
  let cursor = null, nextCursor = null, params = {}, ticket = 0;
  async function show() {
    const mine = ++ticket;
    clear(body).append(h('p', { class: 'muted', 'aria-busy': 'true' }, 'Loading…'));
    try {
      const r = await load(params, cursor);
      if (mine !== ticket) return;
      nextCursor = r.next;
      clear(body).append(render(r.rows));
      prev.disabled = stack.length === 0;
      next.disabled = !nextCursor;
      pos.textContent = 'Page ' + (stack.length + 1);
    } catch (e) {
      if (mine !== ticket) return;
      clear(body).append(h('p', { class: 'empty' }, 'Could not load: ' + e.message));
      ctx.fail('Loading', e);
    }
  }
  next.addEventListener('click', () => { stack.push(cursor); cursor = nextCursor; show(); });
  prev.addEventListener('click', () => { cursor = stack.pop() || null; show(); });
  view.append(body, h('div', { class: 'row pager' }, prev, pos, next));
  return {
    set(p) { params = p; cursor = null; stack.length = 0; return show(); },
    reload: show,
  };
}

// ---- overview ---------------------------------------------------------------

export async function overview(view, args, ctx) {
  const o = await api.get('/api/admin/overview');
  const st = o.licenses_by_status;
  view.append(h('h1', {}, 'Overview'),
    h('div', { class: 'cards' },
      ['active', 'suspended', 'revoked', 'expired'].map((k) =>
        h('div', { class: 'card stat' }, h('span', { class: 'num' }, String(st[k])), h('span', {}, k + ' licenses'))),
      h('div', { class: 'card stat' }, h('span', { class: 'num' }, String(o.installations_seen['24h'])),
        h('span', {}, 'installations seen in 24 h')),
      h('div', { class: 'card stat' }, h('span', { class: 'num' }, String(o.installations_seen['7d'])),
        h('span', {}, 'seen in 7 days')),
      h('div', { class: 'card stat' }, h('span', { class: 'num' }, String(o.expiring_30d.count)),
        h('span', {}, 'expiring in 30 days'))));
  const days = o.validations.map((d) => d.day);
  const seen = codesIn(o.validations);
  view.append(h('div', { class: 'grid2' },
    h('section', { class: 'card', id: 'chart-validations' },
      columns('Validations per day by result (30 days)', days,
        seen.map((c) => ({ name: c, values: o.validations.map((d) => d.codes[c] || 0) })),
        { short: (d) => d.slice(5), empty: 'No validations in the last 30 days.' })),
    h('section', { class: 'card', id: 'chart-status' },
      bars('Licenses by status', ['active', 'suspended', 'revoked', 'expired'].map((k, i) => ({ label: k, value: st[k], k: i })))),
    h('section', { class: 'card', id: 'chart-versions' },
      o.versions.length
        ? bars('Versions in the field (seen in 30 days)', o.versions.map((v, i) => ({ label: v.version || 'unknown', value: v.installations, k: i })))
        : h('div', {}, h('h2', {}, 'Versions in the field'), h('p', { class: 'empty' },
          o.as_of ? 'No installation reported in 30 days.' : 'Not counted yet.')))),
  h('section', { class: 'card' }, h('h2', {}, 'Usage against limits (this month)'),
    table('Metered features closest to their monthly limit', ['License', 'Customer', 'Feature', 'Used', 'Limit', '%'],
      o.usage_near_limits.map((u) => [licLink(u.license_id), u.email, u.feature, String(u.used), String(u.limit),
        u.limit ? Math.round(100 * u.used / u.limit) + ' %' : '—']),
      o.as_of ? 'No metered usage this month.' : 'Not counted yet.')),
  h('section', { class: 'card' }, h('h2', {}, 'Expiring in 30 days'),
    table('Active licenses ending soonest', ['License', 'Customer', 'Plan', 'Ends'],
      o.expiring_30d.licenses.map((l) => [licLink(l.id), l.email, l.plan, when(l.expires_at)]),
      'No license ends in the next 30 days.')),
  h('p', { class: 'muted', id: 'overview-as-of' }, 'Licenses, validations and expiring licenses as of ' +
    when(o.generated_at) + '; installations seen, versions and usage ' +
    (o.as_of ? 'as of ' + when(o.as_of) : 'not counted yet') +
    ' (licd-lifecycle counts them every 15 minutes).'));
}

// ---- licenses ---------------------------------------------------------------

function licenseRows(rows) {
  return table('Licenses', ['License', 'Customer', 'Plan', 'Status', 'Ends', 'Seats in use'],
    rows.map((l) => [licLink(l.id),
      h('span', {}, l.email, l.customer_name ? h('br') : null, l.customer_name ? h('small', { class: 'muted' }, l.customer_name) : null),
      l.plan, badge(l.status), l.expires_at ? day(l.expires_at) : 'perpetual',
      String(l.active_installations) + (l.limits && l.limits.installations !== undefined ? ' / ' + l.limits.installations : '')]),
    'No license matches.');
}

export async function licenses(view, args, ctx) {
  const plans = (await api.get('/api/admin/plans')).plans;
  const q = h('input', { type: 'search', id: 'lic-q', placeholder: 'id, key, e-mail, name, domain or installation id', autocomplete: 'off' });
  const status = h('select', { id: 'lic-status' }, h('option', { value: '' }, 'any'),
    ['active', 'suspended', 'revoked', 'expired'].map((s) => h('option', { value: s }, s)));
  const plan = h('select', { id: 'lic-plan' }, h('option', { value: '' }, 'any'),
    plans.map((p) => h('option', { value: p.code }, p.code)));
  const exp = h('input', { type: 'number', id: 'lic-exp', min: 0, max: 36500, inputmode: 'numeric' });
  const grace = h('input', { type: 'checkbox', id: 'lic-grace' });
  const due = h('input', { type: 'checkbox', id: 'lic-due' });
  view.append(h('h1', {}, 'Licenses'),
    h('form', { class: 'filters', role: 'search', on: { submit: (e) => e.preventDefault() } },
      field('Search', q),
      field('Status', status), field('Plan', plan), field('Expiring within (days)', exp),
      h('div', { class: 'field check' }, grace, h('label', { for: 'lic-grace' }, 'In grace')),
      h('div', { class: 'field check' }, due, h('label', { for: 'lic-due' }, 'Past due'))));
  // POST: what is searched for (a license key, say) stays out of URLs.
  const p = pager(view, async (params, cursor) => {
    const body = { limit: 25 };
    for (const [k, v] of Object.entries(Object.assign({ cursor }, params))) if (v) body[k] = v;
    const r = await api.post('/api/admin/licenses/search', body);
    return { rows: r.licenses, next: r.next_cursor };
  }, licenseRows, ctx);
  const params = () => ({ q: q.value.trim(), status: status.value, plan: plan.value,
    expiring_days: exp.value, in_grace: grace.checked ? 'true' : '', past_due: due.checked ? 'true' : '' });
  const go = () => p.set(params());
  q.addEventListener('input', debounce(go, 250));
  for (const el of [status, plan, grace, due]) el.addEventListener('change', go);
  exp.addEventListener('input', debounce(go, 300));
  if (args[0]) q.value = args[0];
  await go();
}

// A license key shown once, after it was signed (issue, reissue): the
// server never shows it again.
const keyBox = (title, key, ctx, ...more) => {
  const ta = h('textarea', { readonly: true, rows: 6, id: 'new-key', class: 'secret' });
  ta.value = key;
  const copy = button('Copy key', async () => {
    try { await navigator.clipboard.writeText(key); ctx.say('Key copied.'); }
    catch (e) { ta.select(); ctx.say('Select the key and copy it by hand.', 'error'); }
  });
  return h('div', { class: 'card keybox' }, h('h2', {}, title),
    h('p', { class: 'warn' }, 'This key is shown only now. Copy it and give it to the customer; it is never displayed again.'),
    ta, h('div', { class: 'row' }, copy, ...more));
};

// ---- one license ------------------------------------------------------------

export async function license(view, args, ctx) {
  const id = args[0];
  const d = await api.get('/api/admin/licenses/' + encodeURIComponent(id));
  const l = d.license;
  const reload = () => license(clear(view), args, ctx);
  const act = (label, path, body, question) => button(label, async () => {
    if (!await ctx.confirmAction(question, label)) { ctx.say(label + ': cancelled.'); return; }
    try {
      const r = await api.post('/api/admin/licenses/' + encodeURIComponent(id) + path, body ? body() : {});
      ctx.say(label + ': done.' + (r.status ? ' The license is now ' + r.status + '.' : '') +
        (r.deactivated !== undefined ? ' ' + r.deactivated + ' installation(s) deactivated.' : ''));
      await reload();
    } catch (e) { ctx.fail(label, e); }
  }, { class: label === 'Revoke' ? 'danger' : '' });

  view.append(h('h1', {}, 'License ', h('code', {}, l.id)),
    h('p', {}, badge(l.status), ' ', l.status_reason ? h('span', { class: 'muted' }, 'reason: ', l.status_reason) : null));
  const claims = [
    ['Customer', h('span', {}, d.customer.email, ' ', d.customer.name ? h('span', { class: 'muted' }, '(' + d.customer.name + ')') : null)],
    ['Customer id', d.customer.id], ['Plan', l.plan], ['Status', l.status],
    ['Issued', when(l.issued_at)], ['Ends', l.expires_at ? when(l.expires_at) : 'perpetual'],
    ['Grace until', when(l.grace_until)], ['Features', (l.features || []).join(', ') || '—'],
    ['Limits', limitsText(l.limits) || '—'], ['Domain restrictions', (l.domain_restrictions || []).join(', ') || 'none'],
    ['Seats in use', String(l.active_installations)], ['Signing key', l.kid || '—']];
  view.append(h('section', { class: 'card' }, h('h2', {}, 'Claims'),
    h('dl', { class: 'claims' }, claims.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))));

  const reason = h('input', { type: 'text', id: 'act-reason', maxlength: 500, placeholder: 'optional' });
  const rb = () => ({ reason: reason.value.trim() || undefined });
  view.append(h('section', { class: 'card', id: 'actions' }, h('h2', {}, 'Actions'),
    field('Reason (goes to the audit log)', reason),
    h('div', { class: 'row wrap' },
      l.status === 'active' ? act('Suspend', '/suspend', rb, 'Suspend this license? Its installations are refused (SUSPENDED) from their next call.') : null,
      l.status === 'suspended' ? act('Reinstate', '/reinstate', rb, 'Reinstate this license? Its installations are accepted again from their next call.') : null,
      act('Reset activations', '/reset-activations', rb, 'Deactivate every installation of this license? Each must validate again to take a seat.'),
      l.status !== 'revoked' ? button('Reissue key', async () => {
        if (!await ctx.confirmAction('Sign this license\'s key again with the current signing key? The new key is shown only once; the key the customer holds keeps working until its signing key is retired.', 'Reissue key')) {
          ctx.say('Reissue key: cancelled.'); return;
        }
        try {
          const r = await api.post('/api/admin/licenses/' + encodeURIComponent(id) + '/reissue', rb());
          await reload();
          view.querySelector('#actions').append(keyBox('Key reissued with signing key ' + r.kid, r.license_key, ctx));
          ctx.say('Reissue key: done. Give the new key to the customer.');
          view.querySelector('#new-key').focus();
        } catch (e) { ctx.fail('Reissue key', e); }
      }, { id: 'reissue-key' }) : null,
      l.status !== 'revoked' ? act('Revoke', '/revoke', rb, 'Revoke this license for good? This cannot be undone.') : null)));

  // edits: end, domains, limits
  if (l.status !== 'revoked') {
    const end = h('input', { type: 'date', id: 'edit-end', value: l.expires_at ? l.expires_at.slice(0, 10) : '' });
    const perpetual = h('input', { type: 'checkbox', id: 'edit-perpetual', checked: !l.expires_at });
    const doms = h('textarea', { id: 'edit-domains', rows: 3, spellcheck: 'false' });
    doms.value = (l.domain_restrictions || []).join('\n');
    const lims = h('textarea', { id: 'edit-limits', rows: 3, spellcheck: 'false' });
    lims.value = limitsText(l.limits);
    const save = (label, body, question) => button(label, async () => {
      let b;
      try { b = body(); } catch (e) { ctx.say(label + ': ' + e.message, 'error'); return; }
      if (!await ctx.confirmAction(question, label)) { ctx.say(label + ': cancelled.'); return; }
      try {
        await api.post('/api/admin/licenses/' + encodeURIComponent(id) + '/edit', Object.assign(b, rb()));
        ctx.say(label + ': saved.');
        await reload();
      } catch (e) { ctx.fail(label, e); }
    }, { id: 'save-' + label.toLowerCase().replace(/\W+/g, '-') });
    view.append(h('section', { class: 'card', id: 'edits' }, h('h2', {}, 'Change'),
      h('div', { class: 'grid3' },
        h('div', {}, field('End date (UTC midnight)', end),
          h('div', { class: 'field check' }, perpetual, h('label', { for: 'edit-perpetual' }, 'Perpetual')),
          save('Save end', () => {
            if (perpetual.checked) return { expires_at: null };
            if (!end.value) throw new Error('pick a date or Perpetual');
            return { expires_at: end.value };
          }, 'Change when this license ends? An earlier date can end it at once.')),
        h('div', {}, field('Domain restrictions', doms, 'one per line: example.com or *.example.com; empty: any domain'),
          save('Save domains', () => ({ domain_restrictions: list(doms.value) }),
            'Change the domains this license may be used on? Installations on other domains are refused from their next call.')),
        h('div', {}, field('Limits', lims, 'name=number per line; installations caps seats, X_per_month meters X'),
          save('Save limits', () => ({ limits: parseLimits(lims.value) }),
            'Replace this license\'s limits?')))));
  }

  // installations
  view.append(h('section', { class: 'card', id: 'installations' }, h('h2', {}, 'Installations'),
    table('Installations of this license', ['Installation', 'Status', 'Version', 'Domain', 'Last seen', 'First seen', 'Metadata', ''],
      d.installations.map((i) => [h('code', {}, i.id), badge(i.status), i.version || '—', i.domain || '—',
        when(i.last_seen), when(i.first_seen), h('code', { class: 'meta' }, json(i.metadata)),
        i.status === 'active'
          ? act('Deactivate', '/installations/' + encodeURIComponent(i.id) + '/deactivate', rb,
            'Deactivate installation ' + i.id + '? It frees its seat and must validate again.')
          : '']),
      'No installation has validated yet.')));

  // offline lease
  if (l.status === 'active') {
    const iid = h('input', { type: 'text', id: 'lease-iid', pattern: '[A-Za-z0-9._:\\-]{1,128}', maxlength: 128 });
    const days = h('input', { type: 'number', id: 'lease-days', min: 1, max: 3650, value: 30 });
    const out = h('div', { id: 'lease-out' });
    view.append(h('section', { class: 'card' }, h('h2', {}, 'Offline lease'),
      h('p', { class: 'muted' }, 'For an air-gapped machine: takes a seat for the installation and signs a lease it can verify offline.'),
      h('div', { class: 'row wrap' }, field('Installation id', iid), field('Days', days)),
      button('Download lease', async () => {
        if (!iid.value.trim()) { ctx.say('Give the installation id.', 'error'); return; }
        if (!await ctx.confirmAction('Take a seat for ' + iid.value.trim() + ' and sign a ' + days.value + '-day lease?', 'Sign lease')) {
          ctx.say('Offline lease: cancelled.'); return;
        }
        try {
          const r = await api.post('/api/admin/licenses/' + encodeURIComponent(id) + '/lease',
            { installation_id: iid.value.trim(), days: Number(days.value) });
          const blob = new Blob([r.lease + '\n'], { type: 'application/jwt' });
          const a = h('a', { href: URL.createObjectURL(blob), download: 'lease-' + r.installation_id + '.jwt' }, 'Save lease-' + r.installation_id + '.jwt');
          const ta = h('textarea', { readonly: true, rows: 4, class: 'secret' });
          ta.value = r.lease;
          clear(out).append(h('p', {}, 'Lease valid until ' + when(r.lease_expires_at) + '. '), a, ta);
          ctx.say('Offline lease signed for ' + r.installation_id + '.');
        } catch (e) { ctx.fail('Offline lease', e); }
      }), out));
  }

  // usage by month
  const feats = [...new Set(d.usage_by_month.flatMap((m) => Object.keys(m.features)))].sort();
  view.append(h('section', { class: 'card', id: 'chart-usage' },
    columns('Usage by month (12 months)', d.usage_by_month.map((m) => m.period),
      feats.map((f) => ({ name: f, values: d.usage_by_month.map((m) => m.features[f] || 0) })),
      { maxLabels: 12, short: (p) => p.slice(2), empty: 'No usage recorded in 12 months.' })));

  // audit timeline
  view.append(h('section', { class: 'card', id: 'timeline' }, h('h2', {}, 'Audit timeline'),
    d.audit.length
      ? h('ol', { class: 'timeline' }, d.audit.map((a) => h('li', {},
        h('time', { datetime: a.at }, when(a.at)), ' ', h('strong', {}, a.action), ' by ', a.actor,
        a.reason ? h('span', {}, ' — ', a.reason) : null,
        a.details ? h('div', {}, h('code', { class: 'meta' }, json(a.details))) : null)))
      : h('p', { class: 'empty' }, 'Nothing recorded yet.')));
}

// ---- issue ------------------------------------------------------------------

export async function issue(view, args, ctx) {
  const plans = (await api.get('/api/admin/plans')).plans.filter((p) => p.active);
  const email = h('input', { type: 'email', id: 'iss-email', required: true, autocomplete: 'off' });
  const name = h('input', { type: 'text', id: 'iss-name', maxlength: 200, autocomplete: 'off' });
  const plan = h('select', { id: 'iss-plan', required: true }, plans.map((p) => h('option', { value: p.code }, p.code + ' — ' + p.name)));
  const mode = h('select', { id: 'iss-mode' }, h('option', { value: 'days' }, 'for a number of days'),
    h('option', { value: 'date' }, 'until a date'), h('option', { value: 'perpetual' }, 'perpetual'));
  const days = h('input', { type: 'number', id: 'iss-days', min: 1, max: 36500, value: 365 });
  const date = h('input', { type: 'date', id: 'iss-date' });
  const doms = h('textarea', { id: 'iss-domains', rows: 2, spellcheck: 'false' });
  const lims = h('textarea', { id: 'iss-limits', rows: 2, spellcheck: 'false' });
  const out = h('div', { id: 'iss-out', 'aria-live': 'polite' });
  const form = h('form', { class: 'card', id: 'issue-form' },
    h('div', { class: 'grid2' },
      field('Customer e-mail', email, 'created if new'), field('Customer name', name, 'optional; replaces the stored name'),
      field('Plan', plan), field('Valid', mode), field('Days', days), field('Until (UTC midnight)', date),
      field('Domain restrictions', doms, 'one per line; empty: any domain'),
      field('Limit overrides', lims, 'name=number per line; the plan\'s limits otherwise')),
    h('button', { type: 'submit', class: 'primary' }, 'Issue license'));
  if (!plans.length) {
    view.append(h('h1', {}, 'Issue a license'), h('p', { class: 'empty' }, 'No active plan yet: create one on the Plans page first.'));
    return;
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { customer: email.value.trim(), plan: plan.value };
    try {
      if (mode.value === 'days') body.days = Number(days.value);
      else if (mode.value === 'date') {
        if (!date.value) throw new Error('pick the end date');
        body.expires_at = date.value;
      } else body.perpetual = true;
      if (doms.value.trim()) body.domain_restrictions = list(doms.value);
      if (lims.value.trim()) body.limits = parseLimits(lims.value);
    } catch (e) { ctx.say('Issue license: ' + e.message, 'error'); return; }
    if (!await ctx.confirmAction('Issue a ' + body.plan + ' license to ' + body.customer + '?', 'Issue')) {
      ctx.say('Issue license: cancelled.'); return;
    }
    try {
      await api.post('/api/admin/customers', { email: body.customer, name: name.value.trim() || undefined });
      const r = await api.post('/api/admin/licenses', body);
      clear(out).append(keyBox('License issued', r.license_key, ctx,
        licLink(r.license.id, 'Open license ' + r.license.id)));
      form.reset();
      ctx.say('License ' + r.license.id + ' issued to ' + r.license.email + '.');
      out.querySelector('#new-key').focus();
    } catch (e) { ctx.fail('Issue license', e); }
  });
  view.append(h('h1', {}, 'Issue a license'), form, out);
}

// ---- customers --------------------------------------------------------------

export async function customers(view, args, ctx) {
  const q = h('input', { type: 'search', id: 'cust-q', placeholder: 'e-mail or name', autocomplete: 'off' });
  const email = h('input', { type: 'email', id: 'cust-email', required: true, autocomplete: 'off' });
  const name = h('input', { type: 'text', id: 'cust-name', maxlength: 200, autocomplete: 'off' });
  const form = h('form', { class: 'card row wrap', id: 'cust-form' }, field('E-mail', email), field('Name', name),
    h('button', { type: 'submit' }, 'Create customer'));
  view.append(h('h1', {}, 'Customers'), form,
    h('form', { class: 'filters', role: 'search', on: { submit: (e) => e.preventDefault() } }, field('Search', q)));
  const p = pager(view, async (params, cursor) => {
    const r = await api.get('/api/admin/customers', Object.assign({ cursor, limit: 25 }, params));
    return { rows: r.customers, next: r.next_cursor };
  }, (rows) => table('Customers', ['E-mail', 'Name', 'Licenses', 'Since'],
    rows.map((c) => [link('#/licenses/' + encodeURIComponent(c.email), c.email), c.name || '—', String(c.licenses), day(c.created_at)]),
    'No customer matches.'), ctx);
  q.addEventListener('input', debounce(() => p.set({ q: q.value.trim() }), 250));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!await ctx.confirmAction('Create (or rename) customer ' + email.value.trim() + '?', 'Save')) {
      ctx.say('Create customer: cancelled.'); return;
    }
    try {
      const r = await api.post('/api/admin/customers', { email: email.value.trim(), name: name.value.trim() || undefined });
      ctx.say(r.created ? 'Customer ' + r.customer.email + ' created.' : 'Customer ' + r.customer.email + ' existed; name updated.');
      form.reset();
      await p.reload();
    } catch (e) { ctx.fail('Create customer', e); }
  });
  await p.set({});
}

// ---- plans ------------------------------------------------------------------

export async function plans(view, args, ctx) {
  const r = await api.get('/api/admin/plans');
  const code = h('input', { type: 'text', id: 'plan-code', required: true, pattern: '[a-z0-9][a-z0-9_.\\-]{0,63}', autocomplete: 'off' });
  const name = h('input', { type: 'text', id: 'plan-name', maxlength: 200 });
  const feats = h('input', { type: 'text', id: 'plan-features', placeholder: 'sso, reports' });
  const lims = h('textarea', { id: 'plan-limits', rows: 3 });
  const price = h('input', { type: 'number', id: 'plan-price', min: 0 });
  const cur = h('input', { type: 'text', id: 'plan-currency', maxlength: 3, placeholder: 'usd' });
  const iv = h('select', { id: 'plan-interval' }, h('option', { value: '' }, '—'),
    ['month', 'year', 'once'].map((x) => h('option', { value: x }, x)));
  const active = h('input', { type: 'checkbox', id: 'plan-active', checked: true });
  const form = h('form', { class: 'card', id: 'plan-form' },
    h('h2', {}, 'Create or change a plan'),
    h('div', { class: 'grid2' }, field('Code', code, 'an existing code changes that plan'), field('Name', name),
      field('Features', feats, 'comma-separated'), field('Limits', lims, 'name=number per line'),
      field('Price (cents)', price), field('Currency', cur), field('Billing interval', iv),
      h('div', { class: 'field check' }, active, h('label', { for: 'plan-active' }, 'Active'))),
    h('button', { type: 'submit', class: 'primary' }, 'Save plan'));
  const fill = (p) => {
    code.value = p.code; name.value = p.name; feats.value = (p.features || []).join(', ');
    lims.value = limitsText(p.limits); price.value = p.price_cents ?? ''; cur.value = p.currency || '';
    iv.value = p.interval || ''; active.checked = p.active;
    code.focus();
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let body;
    try {
      body = { code: code.value.trim(), name: name.value.trim() || undefined, features: list(feats.value),
        limits: parseLimits(lims.value), active: active.checked,
        price_cents: price.value === '' ? undefined : Number(price.value),
        currency: cur.value.trim() || undefined, interval: iv.value || undefined };
    } catch (e) { ctx.say('Save plan: ' + e.message, 'error'); return; }
    if (!await ctx.confirmAction('Save plan ' + body.code + '? Licenses issued later copy it; existing ones keep theirs.', 'Save')) {
      ctx.say('Save plan: cancelled.'); return;
    }
    try {
      const res = await api.post('/api/admin/plans', body);
      ctx.say('Plan ' + res.plan.code + (res.created ? ' created.' : ' saved.'));
      await plans(clear(view), args, ctx);
    } catch (e) { ctx.fail('Save plan', e); }
  });
  view.append(h('h1', {}, 'Plans'),
    table('Plans', ['Code', 'Name', 'Features', 'Limits', 'Price', 'Active', 'Licenses', ''],
      r.plans.map((p) => [h('code', {}, p.code), p.name, (p.features || []).join(', ') || '—',
        limitsText(p.limits).replace(/\n/g, ', ') || '—',
        p.price_cents !== null ? (p.price_cents / 100).toFixed(2) + ' ' + (p.currency || '') + (p.interval ? ' / ' + p.interval : '') : '—',
        p.active ? 'yes' : 'no', String(p.licenses),
        h('button', { type: 'button', on: { click: () => fill(p) } }, 'Edit')]),
      'No plan yet.'),
    form);
}

// ---- audit ------------------------------------------------------------------

export async function audit(view, args, ctx) {
  const inputs = {
    actor: h('input', { type: 'text', id: 'aud-actor' }), action: h('input', { type: 'text', id: 'aud-action', placeholder: 'license.suspend' }),
    target: h('input', { type: 'text', id: 'aud-target', placeholder: 'license id, plan code…' }),
    since: h('input', { type: 'date', id: 'aud-since' }), until: h('input', { type: 'date', id: 'aud-until' }),
  };
  view.append(h('h1', {}, 'Audit log'),
    h('form', { class: 'filters', on: { submit: (e) => e.preventDefault() } },
      field('Actor', inputs.actor), field('Action', inputs.action), field('Target', inputs.target),
      field('Since', inputs.since), field('Before', inputs.until)));
  const p = pager(view, async (params, cursor) => {
    const r = await api.get('/api/admin/audit', Object.assign({ cursor, limit: 50 }, params));
    return { rows: r.entries, next: r.next_cursor };
  }, (rows) => table('Audit entries', ['When', 'Actor', 'Action', 'Target', 'Reason', 'Details'],
    rows.map((a) => [when(a.at), a.actor, a.action,
      a.target_type === 'license' && a.target_id ? licLink(a.target_id) : (a.target_type + ' ' + (a.target_id || '')),
      a.reason || '—', h('code', { class: 'meta' }, json(a.details))]),
    'No entry matches.'), ctx);
  const go = () => p.set(Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()])));
  for (const el of Object.values(inputs)) el.addEventListener('input', debounce(go, 300));
  await go();
}

// ---- notifications and webhook events --------------------------------------------

export async function notifications(view, args, ctx) {
  const st = h('select', { id: 'ntf-status' }, h('option', { value: '' }, 'any'),
    h('option', { value: 'pending' }, 'pending'), h('option', { value: 'delivered' }, 'delivered'));
  view.append(h('h1', {}, 'Notification outbox'),
    h('form', { class: 'filters', on: { submit: (e) => e.preventDefault() } }, field('State', st)));
  const p = pager(view, async (params, cursor) => {
    const r = await api.get('/api/admin/notifications', Object.assign({ cursor, limit: 50 }, params));
    return { rows: r.notifications, next: r.next_cursor };
  }, (rows) => table('Notifications', ['Id', 'Kind', 'License', 'To', 'State', 'Attempts', 'Last error', 'Next attempt', ''],
    rows.map((n) => [String(n.id), n.kind, n.license_id ? licLink(n.license_id) : '—', n.recipient || 'webhook only',
      badge(n.status), String(n.attempts), n.last_error || '—', n.status === 'pending' ? when(n.next_attempt_at) : when(n.delivered_at),
      n.status === 'pending' ? button('Retry now', async () => {
        if (!await ctx.confirmAction('Retry notification ' + n.id + ' at the next lifecycle run?', 'Retry')) { ctx.say('Retry: cancelled.'); return; }
        try { await api.post('/api/admin/notifications/' + n.id + '/retry'); ctx.say('Notification ' + n.id + ' is due now.'); await p.reload(); }
        catch (e) { ctx.fail('Retry', e); }
      }) : '']),
    'The outbox is empty.'), ctx);
  st.addEventListener('change', () => p.set({ status: st.value }));
  await p.set({});

  const wst = h('select', { id: 'wh-status' }, h('option', { value: '' }, 'any'),
    ['pending', 'applied', 'ignored'].map((x) => h('option', { value: x }, x)));
  const sec = h('section', {}, h('h2', {}, 'Webhook events'),
    h('form', { class: 'filters', on: { submit: (e) => e.preventDefault() } }, field('State', wst)));
  view.append(sec);
  const w = pager(sec, async (params, cursor) => {
    const r = await api.get('/api/admin/webhook-events', Object.assign({ cursor, limit: 25 }, params));
    return { rows: r.events, next: r.next_cursor };
  }, (rows) => table('Webhook events', ['Received', 'Provider', 'Event', 'Type', 'State', 'Waiting on'],
    rows.map((e) => [when(e.received_at), e.provider, h('code', {}, e.event_id), e.type, badge(e.status), e.subject || '—']),
    'No webhook event recorded.'), ctx);
  wst.addEventListener('change', () => w.set({ status: wst.value }));
  await w.set({});
}

// ---- signing keys -------------------------------------------------------------

export async function keys(view, args, ctx) {
  const r = await api.get('/api/admin/keys');
  view.append(h('h1', {}, 'Signing keys'),
    h('p', {}, 'Published at ', link('/.well-known/jwks.json', '/.well-known/jwks.json'),
      '. New keys and leases are signed with the current key; older keys stay published so what they signed still verifies.'),
    table('Keys in the JWKS', ['Key id (kid)', 'Algorithm', 'Type', 'Current'],
      r.keys.map((k) => [h('code', {}, k.kid), k.alg || '—', k.kty + (k.crv ? ' ' + k.crv : ''),
        k.kid === r.current_kid ? h('strong', { class: 'current' }, 'current') : 'verify only']),
      'No key published.'));
}
