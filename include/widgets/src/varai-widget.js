/*! VarAI AI Discovery widget __VARAI_VERSION__ | MIT License | https://varai.ai */
/*
 * One script for every storefront (plain HTML, Shopify, WooCommerce, Magento). No dependencies.
 *
 * Configure it in one of three ways:
 *
 *   1. On its own script tag; the widget renders right after the tag, or into data-varai-container:
 *        <script src=".../varai-widget.min.js" data-varai-api-key="pk_live_..." defer></script>
 *   2. On any number of placeholder elements (what the Shopify, WooCommerce and Magento packages emit):
 *        <div data-varai-widget data-varai-api-key="pk_live_..."></div>
 *   3. From JavaScript, once the script has loaded:
 *        window.VaraiWidget.init({apiKey: 'pk_live_...', container: '#frames', apiBase: 'https://api.varai.ai'});
 *
 * Optional attributes / options: data-varai-api-base (apiBase), data-varai-container (container),
 * data-varai-label (label), data-varai-auto-init="false" on the script tag to skip automatic set-up.
 *
 * The button opens a search box; a search calls the AI Discovery API, GET <apiBase>/ai/discover?q=...,
 * with the key in the X-API-Key header, and lists the frames it suggests. A refused key (401/403) and
 * the rate limit (429, with Retry-After) are told to the shopper in plain words; the merchant finds
 * the reason in the browser console.
 */
(function (window, document) {
  'use strict';

  if (window.VaraiWidget && window.VaraiWidget.version) {
    return; // already loaded on this page (two theme blocks, or a plugin plus a manual tag)
  }

  var VERSION = '__VARAI_VERSION__';
  var DEFAULT_API_BASE = 'https://api.varai.ai';
  var DISCOVER_PATH = '/ai/discover';
  var DEFAULT_LABEL = 'Find your frames';
  var REQUEST_TIMEOUT_MS = 10000;
  var MAX_RESULTS = 12;
  var STYLE_ID = 'varai-widget-style';
  var CSS = [
    '.varai-widget{font:inherit;color:inherit;max-width:28rem}',
    '.varai-widget--floating{position:fixed;right:1rem;bottom:1rem;z-index:2147483000;background:#fff;',
    'padding:.75rem;border-radius:.5rem;box-shadow:0 4px 16px rgba(0,0,0,.15)}',
    '.varai-widget__button{cursor:pointer;padding:.6rem 1.1rem;border:0;border-radius:999px;',
    'background:#111;color:#fff;font:inherit}',
    '.varai-widget__form{display:flex;gap:.5rem;margin-top:.75rem}',
    '.varai-widget__form[hidden]{display:none}',
    '.varai-widget__input{flex:1;padding:.5rem;font:inherit}',
    '.varai-widget__results{list-style:none;margin:.75rem 0 0;padding:0}',
    '.varai-widget__result{display:flex;gap:.75rem;align-items:center;padding:.5rem 0;',
    'border-top:1px solid #eee}',
    '.varai-widget__result img{width:56px;height:56px;object-fit:cover}',
    '.varai-widget__meta{display:block;font-size:.85em;opacity:.7}',
    '.varai-widget__status{margin:.5rem 0 0;font-size:.9em}'
  ].join('');

  // The <script> element that loaded this file; only readable while the file first runs.
  var loaderScript = document.currentScript || null;

  function attr(element, name) {
    if (!element || !element.getAttribute) {
      return null;
    }
    var value = element.getAttribute('data-varai-' + name);
    return value === null || value === '' ? null : value;
  }

  function stripTrailingSlashes(url) {
    while (url.length > 1 && url.charAt(url.length - 1) === '/') {
      url = url.slice(0, -1);
    }
    return url;
  }

  function resolveContainer(target) {
    if (!target) {
      return null;
    }
    if (typeof target === 'string') {
      return document.querySelector(target);
    }
    return target.nodeType === 1 ? target : null;
  }

  function make(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = String(text);
    }
    return node;
  }

  function injectStyle() {
    if (document.getElementById(STYLE_ID)) {
      return;
    }
    var style = make('style');
    style.id = STYLE_ID;
    style.textContent = CSS;
    (document.head || document.body).appendChild(style);
  }

  // The service answers {"query": ..., "suggestions": [{sku, name, style}, ...]}; "results" and
  // "products" lists are accepted too, and url, image and price are shown when present.
  function normaliseResults(body) {
    var list = (body && (body.suggestions || body.results || body.products)) || [];
    var results = [];
    for (var i = 0; i < list.length && results.length < MAX_RESULTS; i++) {
      var item = list[i] || {};
      var name = item.name || item.title || item.sku;
      if (!name) {
        continue;
      }
      results.push({
        name: String(name),
        sku: item.sku ? String(item.sku) : null,
        style: item.style ? String(item.style) : null,
        url: item.url ? String(item.url) : null,
        image: item.image || item.image_url || null,
        price: item.price !== undefined && item.price !== null ? item.price : null
      });
    }
    return results;
  }

  // An answer that is not a 2xx: its status, and Retry-After when the gateway's rate limit refused it.
  function failure(response) {
    var error = new Error('AI Discovery answered HTTP ' + response.status);
    error.status = response.status;
    var retry = response.headers && response.headers.get ? parseInt(response.headers.get('Retry-After'), 10) : NaN;
    error.retryAfter = isNaN(retry) ? null : retry;
    return error;
  }

  // What a shopper reads; the merchant finds why in the console.
  function failureMessage(error) {
    var status = error && error.status;
    if (status === 429) {
      return 'Lots of shoppers are searching right now; please try again in ' +
        (error.retryAfter ? error.retryAfter + ' s.' : 'a moment.');
    }
    if (status === 401 || status === 403) {
      if (window.console && window.console.warn) {
        window.console.warn('VarAI widget: the AI Discovery API refused this shop (HTTP ' + status +
          '); check its data-varai-api-key and that the shop\'s address is allowed.');
      }
      return 'Frame suggestions are not available on this shop yet.';
    }
    return 'Sorry, frame suggestions are unavailable right now.';
  }

  function discover(query, options) {
    options = options || {};
    var apiBase = stripTrailingSlashes(options.apiBase || DEFAULT_API_BASE);
    var url = apiBase + DISCOVER_PATH + '?q=' + encodeURIComponent(query);
    var headers = {Accept: 'application/json'};
    if (options.apiKey) {
      headers['X-API-Key'] = options.apiKey;
    }
    var controller = typeof window.AbortController === 'function' ? new window.AbortController() : null;
    var timer = controller ? window.setTimeout(function () { controller.abort(); }, REQUEST_TIMEOUT_MS) : null;
    var request = {method: 'GET', headers: headers, credentials: 'omit', mode: 'cors'};
    if (controller) {
      request.signal = controller.signal;
    }
    function done() {
      if (timer !== null) {
        window.clearTimeout(timer);
      }
    }
    var served = null;
    return window.fetch(url, request).then(function (response) {
      if (!response.ok) {
        throw failure(response);
      }
      served = response.headers && response.headers.get ? response.headers.get('X-Served-Version') : null;
      return response.json();
    }).then(function (body) {
      done();
      var results = normaliseResults(body);
      results.servedVersion = served; // which API release answered (the gateway exposes X-Served-Version)
      return results;
    }, function (error) {
      done();
      throw error;
    });
  }

  function Widget(options) {
    this.options = options;
    this.root = null;
    this.form = null;
    this.input = null;
    this.status = null;
    this.list = null;
    this.results = [];
    this.lastError = null;
  }

  Widget.prototype.mount = function () {
    var self = this;
    var root = resolveContainer(this.options.container);
    if (!root) {
      root = make('div', 'varai-widget--floating');
      document.body.appendChild(root);
    }
    root.className = (root.className ? root.className + ' ' : '') + 'varai-widget';
    root.setAttribute('data-varai-ready', VERSION);
    injectStyle();

    var button = make('button', 'varai-widget__button', this.options.label || DEFAULT_LABEL);
    button.type = 'button';
    button.setAttribute('aria-expanded', 'false');

    var form = make('form', 'varai-widget__form');
    form.setAttribute('role', 'search');
    form.hidden = true;
    var input = make('input', 'varai-widget__input');
    input.type = 'search';
    input.name = 'q';
    input.placeholder = 'Describe the frames you are looking for';
    input.setAttribute('aria-label', 'Describe the frames you are looking for');
    var submit = make('button', 'varai-widget__submit', 'Search');
    submit.type = 'submit';
    form.appendChild(input);
    form.appendChild(submit);

    var status = make('p', 'varai-widget__status');
    status.setAttribute('aria-live', 'polite');
    var list = make('ul', 'varai-widget__results');

    button.addEventListener('click', function () {
      form.hidden = !form.hidden;
      button.setAttribute('aria-expanded', form.hidden ? 'false' : 'true');
      if (!form.hidden && input.focus) {
        input.focus();
      }
    });
    form.addEventListener('submit', function (event) {
      if (event && event.preventDefault) {
        event.preventDefault();
      }
      self.search(input.value);
    });

    root.appendChild(button);
    root.appendChild(form);
    root.appendChild(status);
    root.appendChild(list);
    this.root = root;
    this.form = form;
    this.input = input;
    this.status = status;
    this.list = list;
    return this;
  };

  Widget.prototype.search = function (query) {
    var self = this;
    query = String(query || '').trim();
    if (!query) {
      this.status.textContent = 'Tell us what you are looking for, e.g. "light round frames".';
      return Promise.resolve([]);
    }
    this.status.textContent = 'Searching...';
    this.lastError = null;
    return discover(query, this.options).then(function (results) {
      self.render(results);
      if (results.servedVersion) {
        self.root.setAttribute('data-varai-served-version', results.servedVersion);
      }
      return results;
    }, function (error) {
      self.lastError = error;
      self.results = [];
      self.list.textContent = '';
      self.status.textContent = failureMessage(error);
      return [];
    });
  };

  Widget.prototype.render = function (results) {
    this.results = results;
    this.list.textContent = '';
    this.status.textContent = results.length ? results.length + ' frames for you' : 'No frames matched; try other words.';
    for (var i = 0; i < results.length; i++) {
      var result = results[i];
      var item = make('li', 'varai-widget__result');
      if (result.image) {
        var image = make('img');
        image.src = result.image;
        image.alt = result.name;
        image.loading = 'lazy';
        item.appendChild(image);
      }
      var text = make('span', 'varai-widget__text');
      var title = result.url ? make('a', 'varai-widget__name', result.name) : make('strong', 'varai-widget__name', result.name);
      if (result.url) {
        title.href = result.url;
      }
      text.appendChild(title);
      var meta = [];
      if (result.style) {
        meta.push(result.style);
      }
      if (result.price !== null) {
        meta.push(String(result.price));
      }
      if (meta.length) {
        text.appendChild(make('span', 'varai-widget__meta', meta.join(' \u00b7 ')));
      }
      item.appendChild(text);
      this.list.appendChild(item);
    }
  };

  function init(options) {
    options = options || {};
    if (!options.apiKey) {
      throw new Error('VaraiWidget.init: apiKey is required (your VarAI widget API key)');
    }
    var widget = new Widget({
      apiKey: String(options.apiKey),
      apiBase: options.apiBase || DEFAULT_API_BASE,
      container: options.container || null,
      label: options.label || DEFAULT_LABEL
    });
    return widget.mount();
  }

  function autoInit() {
    var scriptKey = attr(loaderScript, 'api-key');
    var scriptBase = attr(loaderScript, 'api-base');
    var mounted = 0;
    var placeholders = document.querySelectorAll('[data-varai-widget]');
    for (var i = 0; i < placeholders.length; i++) {
      var element = placeholders[i];
      var key = attr(element, 'api-key') || scriptKey;
      if (!key || element.getAttribute('data-varai-ready')) {
        continue;
      }
      init({apiKey: key, apiBase: attr(element, 'api-base') || scriptBase, container: element,
        label: attr(element, 'label')});
      mounted++;
    }
    if (!mounted && scriptKey) {
      var container = resolveContainer(attr(loaderScript, 'container'));
      if (!container && loaderScript && loaderScript.parentNode && loaderScript.parentNode !== document.head) {
        container = make('div');
        loaderScript.parentNode.insertBefore(container, loaderScript.nextSibling);
      }
      init({apiKey: scriptKey, apiBase: scriptBase, container: container, label: attr(loaderScript, 'label')});
    }
  }

  window.VaraiWidget = {
    version: VERSION,
    defaults: {apiBase: DEFAULT_API_BASE, label: DEFAULT_LABEL},
    init: init,
    discover: discover
  };

  if (attr(loaderScript, 'auto-init') !== 'false') {
    if (document.readyState === 'loading') {
      document.addEventListener('DOMContentLoaded', autoInit);
    } else {
      autoInit();
    }
  }
})(window, document);
