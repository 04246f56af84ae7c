// Runs a built widget file in node with a minimal DOM and a recorded fetch, and prints what happened as JSON.
// usage: node widget_harness.js <widget.js> <scenario>
// Scenarios: script-tag, placeholders, init-errors, http-error, double-load.
'use strict';

const fs = require('fs');
const vm = require('vm');

const [, , widgetPath, scenario] = process.argv;
const code = fs.readFileSync(widgetPath, 'utf8');

class Element {
  constructor(tag, ownerDocument) {
    this.tagName = tag.toUpperCase();
    this.nodeType = 1;
    this.ownerDocument = ownerDocument;
    this.children = [];
    this.attributes = {};
    this.listeners = {};
    this.parentNode = null;
    this.className = '';
    this.hidden = false;
    this.value = '';
    this.ownText = '';
  }
  appendChild(child) { return this.insertBefore(child, null); }
  insertBefore(child, reference) {
    child.parentNode = this;
    const at = reference ? this.children.indexOf(reference) : -1;
    if (at < 0) this.children.push(child); else this.children.splice(at, 0, child);
    return child;
  }
  get nextSibling() {
    if (!this.parentNode) return null;
    const siblings = this.parentNode.children;
    return siblings[siblings.indexOf(this) + 1] || null;
  }
  setAttribute(name, value) { this.attributes[name] = String(value); if (name === 'id') this.id = String(value); }
  getAttribute(name) { return Object.prototype.hasOwnProperty.call(this.attributes, name) ? this.attributes[name] : null; }
  addEventListener(type, listener) { (this.listeners[type] = this.listeners[type] || []).push(listener); }
  dispatch(type) {
    const event = { type, defaultPrevented: false, preventDefault() { this.defaultPrevented = true; } };
    (this.listeners[type] || []).forEach((listener) => listener(event));
    return event;
  }
  focus() { this.ownerDocument.focused = this; }
  get textContent() { return this.ownText + this.children.map((c) => c.textContent).join(''); }
  set textContent(value) { this.children = []; this.ownText = String(value); }
  descendants() { return this.children.flatMap((c) => [c, ...c.descendants()]); }
  matches(selector) {
    if (selector.startsWith('#')) return this.id === selector.slice(1);
    if (selector.startsWith('[') && selector.endsWith(']')) return this.getAttribute(selector.slice(1, -1)) !== null;
    if (selector.startsWith('.')) return this.className.split(' ').includes(selector.slice(1));
    return this.tagName === selector.toUpperCase();
  }
}

function makeEnvironment({ scriptAttributes = null, scriptInHead = false, placeholders = [], fetchAnswer } = {}) {
  const document = { readyState: 'complete', listeners: {}, focused: null };
  document.createElement = (tag) => new Element(tag, document);
  document.documentElement = document.createElement('html');
  document.head = document.documentElement.appendChild(document.createElement('head'));
  document.body = document.documentElement.appendChild(document.createElement('body'));
  const all = () => document.documentElement.descendants();
  document.querySelectorAll = (selector) => all().filter((e) => e.matches(selector));
  document.querySelector = (selector) => document.querySelectorAll(selector)[0] || null;
  document.getElementById = (id) => document.querySelector('#' + id);
  document.addEventListener = (type, listener) => { (document.listeners[type] = document.listeners[type] || []).push(listener); };
  placeholders.forEach((attributes) => {
    const element = document.body.appendChild(document.createElement('div'));
    Object.entries(attributes).forEach(([k, v]) => element.setAttribute(k, v));
  });
  let script = null;
  if (scriptAttributes) {
    script = (scriptInHead ? document.head : document.body).appendChild(document.createElement('script'));
    Object.entries(scriptAttributes).forEach(([k, v]) => script.setAttribute(k, v));
    document.body.appendChild(document.createElement('footer'));
  }
  document.currentScript = script;
  const requests = [];
  const window = {
    document,
    setTimeout, clearTimeout, AbortController, Promise,
    fetch(url, init) {
      requests.push({ url, headers: init.headers, method: init.method, credentials: init.credentials });
      return Promise.resolve(fetchAnswer(url));
    },
  };
  window.window = window;
  return { window, document, requests, script };
}

function json(status, body, headers = {}) {
  const get = (name) => (name in headers ? String(headers[name]) : null);
  return { ok: status >= 200 && status < 300, status, headers: { get }, json: () => Promise.resolve(body) };
}

const SUGGESTIONS = {
  query: 'light round frames',
  suggestions: [
    { sku: 'VF-1001', name: 'Aria Round', style: 'round' },
    { sku: 'VF-1002', name: 'Milo Panto', style: 'panto' },
  ],
};

function load(env) {
  vm.runInNewContext(code, { window: env.window, document: env.document, console });
}

function describe(root) {
  const find = (cls) => root.descendants().find((e) => e.className.split(' ').includes(cls));
  return {
    className: root.className,
    ready: root.getAttribute('data-varai-ready'),
    button: find('varai-widget__button').textContent,
    formHidden: find('varai-widget__form').hidden,
  };
}

async function main() {
  const out = {};
  if (scenario === 'script-tag') {
    const env = makeEnvironment({
      scriptAttributes: { 'data-varai-api-key': 'pk_test_123', 'data-varai-api-base': 'http://127.0.0.1:18080/' },
      fetchAnswer: () => json(200, SUGGESTIONS),
    });
    load(env);
    const api = env.window.VaraiWidget;
    out.version = api.version;
    out.defaults = api.defaults;
    const root = env.script.nextSibling;
    out.widget = describe(root);
    out.styleInjected = env.document.getElementById('varai-widget-style') !== null;
    const button = root.descendants().find((e) => e.className === 'varai-widget__button');
    button.dispatch('click');
    out.formHiddenAfterClick = root.descendants().find((e) => e.className === 'varai-widget__form').hidden;
    out.inputFocused = env.document.focused && env.document.focused.className === 'varai-widget__input';
    env.document.focused.value = 'light round frames';
    const form = root.descendants().find((e) => e.className === 'varai-widget__form');
    out.submitPrevented = form.dispatch('submit').defaultPrevented;
    await new Promise((resolve) => setTimeout(resolve, 20));
    out.requests = env.requests;
    out.results = root.descendants().filter((e) => e.className === 'varai-widget__result').map((e) => e.textContent);
    out.status = root.descendants().find((e) => e.className === 'varai-widget__status').textContent;
  } else if (scenario === 'placeholders') {
    const env = makeEnvironment({
      placeholders: [
        { 'data-varai-widget': '', 'data-varai-api-key': 'pk_shop_a', 'data-varai-label': 'Find my glasses' },
        { 'data-varai-widget': '', 'data-varai-api-key': 'pk_shop_b' },
        { 'data-varai-widget': '' },
      ],
      fetchAnswer: () => json(200, SUGGESTIONS),
    });
    load(env);
    const roots = env.document.querySelectorAll('[data-varai-widget]');
    out.widgets = roots.map((root) => (root.getAttribute('data-varai-ready') ? describe(root) : null));
    out.results = await env.window.VaraiWidget.discover('cat eye', { apiKey: 'pk_shop_a' });
    out.requests = env.requests;
  } else if (scenario === 'init-errors') {
    const env = makeEnvironment({ fetchAnswer: () => json(200, SUGGESTIONS) });
    load(env);
    try { env.window.VaraiWidget.init({}); out.threw = null; } catch (error) { out.threw = error.message; }
    const widget = env.window.VaraiWidget.init({ apiKey: 'pk_js', container: '#missing' });
    out.floating = describe(widget.root);
    out.floatingParent = widget.root.parentNode === env.document.body;
    out.autoWidgets = env.document.querySelectorAll('.varai-widget').length;
  } else if (scenario === 'http-error') {
    const env = makeEnvironment({ fetchAnswer: () => json(503, { error: 'down' }) });
    load(env);
    const host = env.document.body.appendChild(env.document.createElement('div'));
    host.id = 'frames';
    const widget = env.window.VaraiWidget.init({ apiKey: 'pk_js', container: '#frames' });
    out.results = await widget.search('anything');
    out.status = widget.status.textContent;
    out.error = widget.lastError && widget.lastError.message;
    out.empty = await widget.search('   ');
    out.emptyStatus = widget.status.textContent;
  } else if (scenario === 'refused') {
    const answers = [
      json(401, { error: 'this API key is not valid', code: 'api_key_invalid' }),
      json(429, { error: 'slow down', code: 'rate_limited' }, { 'Retry-After': '7' }),
      json(429, { error: 'slow down', code: 'rate_limited' }),
    ];
    const env = makeEnvironment({ fetchAnswer: () => answers.shift() });
    const warnings = [];
    env.window.console = { warn: (message) => warnings.push(message) };
    load(env);
    const widget = env.window.VaraiWidget.init({ apiKey: 'pk_wrong' });
    out.statuses = [];
    for (let i = 0; i < 3; i++) {
      await widget.search('round');
      out.statuses.push(widget.status.textContent);
    }
    out.retryAfter = widget.lastError.retryAfter;
    out.warnings = warnings;
  } else if (scenario === 'double-load') {
    const env = makeEnvironment({
      scriptAttributes: { 'data-varai-api-key': 'pk_test', 'data-varai-auto-init': 'false' },
      fetchAnswer: () => json(200, SUGGESTIONS),
    });
    load(env);
    const first = env.window.VaraiWidget;
    load(env);
    out.sameObject = first === env.window.VaraiWidget;
    out.widgets = env.document.querySelectorAll('.varai-widget').length;
  } else {
    throw new Error('unknown scenario ' + scenario);
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((error) => { console.error(error && error.stack || error); process.exit(1); });
