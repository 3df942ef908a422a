// The Salla Embedded SDK's browser build reads process.env.NODE_ENV; browsers have no `process`. Loaded before
// the SDK, as a file (the page's CSP allows no inline script).
window.process = window.process || { env: {} };
