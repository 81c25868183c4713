/*
 * The dls-gateway playground: GraphiQL (vendored, served by the gateway) with
 *  - the API key typed once into the bar above the editor, kept in localStorage and sent as
 *    X-API-Key on every request;
 *  - one tab per register with an example query (computed by the gateway from the schema);
 *  - each type's and field's security level, appended to its description in the
 *    documentation explorer and listed in a "Security levels" panel;
 *  - the GraphiQL Explorer panel to build queries by clicking.
 * The configuration comes from the JSON in <script id="dls-config">.
 */
(function () {
  'use strict';

  var config = JSON.parse(document.getElementById('dls-config').textContent);
  var h = React.createElement;

  // --- the API key ----------------------------------------------------------------------

  function readKey() {
    try {
      return window.localStorage.getItem(config.apiKeyStorage) || '';
    } catch (error) {
      return '';
    }
  }

  function writeKey(value) {
    try {
      if (value) {
        window.localStorage.setItem(config.apiKeyStorage, value);
      } else {
        window.localStorage.removeItem(config.apiKeyStorage);
      }
    } catch (error) {
      // Storage may be disabled; the key then lasts only for this page.
      memoryKey = value;
    }
  }

  var memoryKey = '';

  function currentKey() {
    return readKey() || memoryKey;
  }

  // --- security levels ------------------------------------------------------------------

  function levelText(level) {
    return level === 0
      ? 'Security level 0 (public).'
      : 'Security level ' + level + ' (needs an API key of level ' + level + ' or higher).';
  }

  // The level goes first, in the description's first paragraph: lists in the documentation
  // explorer show only that paragraph.
  function withNote(description, note) {
    return description ? '*' + note + '* ' + description : '*' + note + '*';
  }

  // Appends the levels to the descriptions of an introspection result, so that the
  // documentation explorer shows them beside each type and field.
  function annotate(schema) {
    (schema.types || []).forEach(function (type) {
      var info = config.levels[type.name];
      if (!info) {
        return;
      }
      if (type.name !== 'Query') {
        type.description = withNote(type.description, levelText(info.level));
      }
      (type.fields || []).forEach(function (field) {
        var level = info.fields[field.name];
        if (level !== undefined) {
          field.description = withNote(field.description, levelText(level));
        }
      });
    });
  }

  function LevelsPanel() {
    var rows = [];
    Object.keys(config.levels)
      .filter(function (name) { return name !== 'Query'; })
      .sort()
      .forEach(function (name) {
        var info = config.levels[name];
        rows.push(h('tr', { key: name, className: 'dls-level-type' },
          h('td', null, name), h('td', null, String(info.level))));
        Object.keys(info.fields).sort().forEach(function (field) {
          var level = info.fields[field];
          if (level > info.level) {
            rows.push(h('tr', { key: name + '.' + field, className: 'dls-level-field' },
              h('td', null, name + '.' + field), h('td', null, String(level))));
          }
        });
      });
    return h('div', { className: 'dls-levels' },
      h('div', { className: 'graphiql-doc-explorer-title' }, 'Security levels'),
      h('p', null, 'Level 0 is public. Higher levels need an API key of that level or ' +
        'higher (enter it once above). A field is listed when it needs more than its type.'),
      h('table', null,
        h('thead', null, h('tr', null, h('th', null, 'type or field'), h('th', null, 'level'))),
        h('tbody', null, rows)));
  }

  function LockIcon() {
    return h('svg', { viewBox: '0 0 24 24', width: '1em', height: '1em', 'aria-hidden': 'true' },
      h('path', {
        fill: 'none', stroke: 'currentColor', strokeWidth: 1.5,
        d: 'M7 11V8a5 5 0 0 1 10 0v3M5 11h14v10H5z',
      }));
  }

  var levelsPlugin = { title: 'Security levels', icon: LockIcon, content: LevelsPanel };

  // --- requests ---------------------------------------------------------------------------

  // GraphiQL reads the operation name from the editor a moment after each edit, so a
  // document run straight after typing or pasting can go out with the name of the tab's
  // previous document, which the server must reject ("Unknown operation named").  Send a
  // name only when the document defines an operation of that name.
  function withLiveOperationName(params) {
    var name = params && params.operationName;
    if (!name || typeof params.query !== 'string' || !/^[_A-Za-z][_0-9A-Za-z]*$/.test(name)) {
      return params;
    }
    var defined = new RegExp('(^|[^_0-9A-Za-z])(query|mutation|subscription)\\s+' + name + '(?![_0-9A-Za-z])');
    if (defined.test(params.query)) {
      return params;
    }
    var copy = Object.assign({}, params);
    delete copy.operationName;
    return copy;
  }

  async function fetcher(params, options) {
    var headers = {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json;q=0.9',
    };
    var extra = (options && options.headers) || {};
    Object.keys(extra).forEach(function (name) {
      headers[name.toLowerCase()] = extra[name];
    });
    params = withLiveOperationName(params);
    var key = currentKey();
    // Credentials typed into the headers editor win over the stored key.
    if (key && !headers['x-api-key'] && !headers.authorization) {
      headers['x-api-key'] = key;
    }
    var response = await fetch(config.endpoint, {
      method: 'POST',
      headers: headers,
      body: JSON.stringify(params),
      credentials: 'same-origin',
    });
    var text = await response.text();
    var body;
    try {
      body = JSON.parse(text);
    } catch (error) {
      return { errors: [{ message: 'HTTP ' + response.status + ': ' + text.slice(0, 300) }] };
    }
    if (body && body.data && body.data.__schema) {
      annotate(body.data.__schema);
    }
    return body;
  }

  // --- the page ---------------------------------------------------------------------------

  var storage = GraphiQL.createLocalStorage({ namespace: config.storageNamespace });
  var plugins = [levelsPlugin];
  if (window.GraphiQLPluginExplorer) {
    plugins.push(window.GraphiQLPluginExplorer.explorerPlugin());
  }
  var defaultTabs = config.examples.map(function (example) {
    return { query: example.query };
  });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  var generation = 0;

  function render() {
    // A new key may change the schema (per-level schemas): remount to fetch it again.
    root.render(h(GraphiQL, {
      key: 'graphiql-' + generation,
      fetcher: fetcher,
      storage: storage,
      defaultTabs: defaultTabs,
      plugins: plugins,
      defaultEditorToolsVisibility: false,
    }));
  }

  var input = document.getElementById('dls-api-key');
  var state = document.getElementById('dls-key-state');

  function showState() {
    state.textContent = currentKey()
      ? 'An API key is sent with every request.'
      : 'No API key: public data only.';
  }

  document.getElementById('dls-key-form').addEventListener('submit', function (event) {
    event.preventDefault();
    writeKey(input.value.trim());
    input.value = '';
    showState();
    generation += 1;
    render();
  });

  document.getElementById('dls-key-forget').addEventListener('click', function () {
    writeKey('');
    input.value = '';
    showState();
    generation += 1;
    render();
  });

  showState();
  render();
})();
