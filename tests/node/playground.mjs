// Drives the gateway's GraphiQL playground in a real headless Chromium (Debian's chromium,
// through playwright-core; no browser download) and reports what a person would see.
//
//   node tests/node/playground.mjs '<json>'
//
// The JSON names: url (the playground page), query (typed into a new tab and run),
// keyedQuery and apiKey (run before and after entering the key once in the page's key
// field), screenshot (optional PNG path). Prints one JSON line with the observations; the
// pytest side (tests/browser/) checks them against the recorded data.
import { chromium } from 'playwright-core';

const spec = JSON.parse(process.argv[2] ?? '{}');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const origin = new URL(spec.url).origin;

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-default-apps',
    '--disable-extensions',
    '--disable-sync',
    '--metrics-recording-only',
    '--no-first-run',
    '--no-default-browser-check',
  ],
});

const report = { requests: [], consoleErrors: [], pageErrors: [] };
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on('request', (request) => {
    report.requests.push({
      url: request.url(),
      method: request.method(),
      apiKey: request.headers()['x-api-key'] ?? null,
    });
  });
  page.on('console', (message) => {
    if (message.type() === 'error') {
      report.consoleErrors.push(message.text());
    }
  });
  page.on('pageerror', (error) => report.pageErrors.push(String(error)));

  const introspected = () =>
    page.waitForResponse((response) =>
      response.url().startsWith(origin) &&
      response.request().method() === 'POST' &&
      (response.request().postData() ?? '').includes('__schema'));

  let schemaLoaded = introspected();
  const response = await page.goto(spec.url, { waitUntil: 'load' });
  report.pageStatus = response.status();
  report.csp = response.headers()['content-security-policy'] ?? null;
  await schemaLoaded;
  await page.waitForSelector('.graphiql-container');
  report.title = await page.title();
  report.tabs = await page.$$eval('.graphiql-tab .graphiql-tab-button', (tabs) => tabs.map((t) => t.textContent.trim()));
  report.firstTabQuery = await editorValue(page, '.graphiql-query-editor');
  report.keyState = await page.textContent('#dls-key-state');

  // The security levels: the panel, and the documentation explorer.
  await page.click('button[aria-label="Show Security levels"]');
  report.levelsPanel = await page.innerText('.graphiql-plugin');
  await page.click('button[aria-label="Show Documentation Explorer"]');
  await page.click('.graphiql-doc-explorer-content a:text-is("Query")');
  await page.waitForSelector('.graphiql-doc-explorer-title:text-is("Query")');
  report.docsQuery = await page.innerText('.graphiql-doc-explorer-content');
  if (spec.docsType) {
    await page.click(`.graphiql-doc-explorer-content a.graphiql-doc-explorer-field-name:text-is("${spec.docsType}")`);
    await page.waitForSelector(`.graphiql-doc-explorer-title:text-is("${spec.docsType}")`);
    await page.click(`.graphiql-doc-explorer-content a.graphiql-doc-explorer-type-name:text-is("${spec.docsType}Connection")`);
    await page.click('.graphiql-doc-explorer-content a.graphiql-doc-explorer-field-name:text-is("nodes")');
    await page.click(`.graphiql-doc-explorer-content a.graphiql-doc-explorer-type-name:text-is("${spec.docsType}")`);
    await page.waitForSelector(`.graphiql-doc-explorer-title:text-is("${spec.docsType}")`);
    report.docsType = await page.innerText('.graphiql-doc-explorer-content');
  }

  // A query typed into a new tab's editor, run with the run button.
  report.result = await typeAndRun(page, spec.query);
  report.typedQuery = await editorValue(page, '.graphiql-query-editor');

  if (spec.keyedQuery) {
    report.keyedBefore = await typeAndRun(page, spec.keyedQuery);
    schemaLoaded = introspected();
    await page.fill('#dls-api-key', spec.apiKey);
    await page.click('#dls-key-save');
    await schemaLoaded;
    await page.waitForSelector('.graphiql-container');
    report.keyStateAfter = await page.textContent('#dls-key-state');
    report.keyedAfter = await typeAndRun(page, spec.keyedQuery);
    report.storedKey = await page.evaluate(() => window.localStorage.getItem('dls-gateway:api-key'));
  }
  if (spec.screenshot) {
    await page.screenshot({ path: spec.screenshot });
  }
  await context.close();
} finally {
  await browser.close();
}
report.external = report.requests
  .map((request) => request.url)
  .filter((url) => !url.startsWith(origin + '/') && !url.startsWith('data:'));
console.log(JSON.stringify(report));

async function editorValue(page, selector) {
  return page.$eval(`${selector} .CodeMirror`, (element) => element.CodeMirror.getValue());
}

async function typeAndRun(page, query) {
  await page.click('.graphiql-tab-add');
  const editor = `.graphiql-query-editor .CodeMirror`;
  await page.click(editor);
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.type(query);
  // Close any completion list the typing opened before running.
  await page.keyboard.press('Escape');
  const answered = page.waitForResponse((response) =>
    response.url().startsWith(origin) &&
    response.request().method() === 'POST' &&
    !(response.request().postData() ?? '').includes('__schema'));
  await page.click('.graphiql-execute-button');
  await answered;
  await page.waitForFunction(() => {
    const element = document.querySelector('.graphiql-response .CodeMirror');
    return element && element.CodeMirror.getValue().trim().startsWith('{');
  });
  const visible = await page.innerText('.graphiql-response .CodeMirror-code');
  const value = await editorValue(page, '.graphiql-response');
  return { visible, value };
}
