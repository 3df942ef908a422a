// The Salla embedded shell (GET /salla/embedded). The flow, per @salla.sa/embedded-sdk 0.2.5:
//   embedded.init() → embedded.auth.getToken() → POST /api/embedded/session {token} → the wss_ session, kept in
//   memory only (never storage or cookies) and sent as `Authorization: Bearer` by app.js on every htmx request
//   → the first screen → embedded.ready().
// Recovery: 401 token_expired / session_expired → embedded.auth.refresh() at most once per page load (Salla
// reloads the frame with a new token; a sessionStorage flag survives that reload, so a second expiry in a row
// does not loop); 401 invalid_token → embedded.destroy(); 409 tenant_not_ready → the setup screen, retrying
// the same call every few seconds.
(function () {
  "use strict";
  var body = document.body;
  var screen = document.getElementById("screen");
  var REFRESHED = "wosool.refreshed";
  var RETRY_MS = 4000;
  var sdk = (window.Salla && window.Salla.embedded) || (window.salla && window.salla.embedded) ||
    (window.SallaEmbeddedSDK && window.SallaEmbeddedSDK.embedded);
  var readySent = false;
  var state = window.Wosool = window.Wosool || {};

  function message(text, testid) {
    screen.textContent = "";
    var box = document.createElement("div");
    box.className = "problem";
    box.dataset.testid = testid;
    box.textContent = text;
    screen.appendChild(box);
  }

  function setupScreen(provisioning) {
    screen.textContent = "";
    var box = document.createElement("div");
    box.className = "problem";
    box.dataset.testid = "setup-progress";
    var text = document.createElement("p");
    text.textContent = body.dataset.msgSettingUp;
    box.appendChild(text);
    var bar = document.createElement("progress");
    bar.max = 100;
    var progress = provisioning && typeof provisioning.progress === "number" ? provisioning.progress : null;
    if (progress !== null) bar.value = progress <= 1 ? Math.round(progress * 100) : Math.round(progress);
    box.appendChild(bar);
    screen.appendChild(box);
  }

  function refreshOnce() {
    var already = false;
    try { already = sessionStorage.getItem(REFRESHED) === "1"; } catch (e) { already = false; }
    if (already) {
      message(body.dataset.msgExpired, "shell-expired");
      return;
    }
    try { sessionStorage.setItem(REFRESHED, "1"); } catch (e) { /* storage blocked: refresh anyway */ }
    sdk.auth.refresh();
  }

  function destroy() {
    state.session = null;
    message(body.dataset.msgExpired, "shell-destroyed");
    sdk.destroy();
  }

  state.onUnauthorized = function (code) {
    if (code === "invalid_token") destroy();
    else refreshOnce();
  };
  state.toast = function (text, isError) {
    if (!sdk || !sdk.ui || !sdk.ui.toast) return false;
    if (isError) sdk.ui.toast.error(text); else sdk.ui.toast.success(text);
    return true;
  };
  state.onScreen = function (name, title) {
    if (sdk && sdk.page && title) sdk.page.setTitle(title);
  };
  state.onLoaded = function () {
    if (readySent || !state.session) return;
    readySent = true;
    sdk.ready();
  };

  function firstScreen() {
    window.htmx.ajax("GET", "/app/home", { target: "#screen", swap: "innerHTML" });
  }

  function startSession(token) {
    fetch("/api/embedded/session", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify({ token: token }),
      credentials: "omit",
      referrerPolicy: "no-referrer"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        return { status: response.status, json: json };
      });
    }).then(function (answer) {
      var error = (answer.json && answer.json.error) || {};
      if (answer.status === 200 && answer.json.session) {
        state.session = answer.json.session;
        try { sessionStorage.removeItem(REFRESHED); } catch (e) { /* ignore */ }
        firstScreen();
      } else if (answer.status === 401 && (error.code === "token_expired" || error.code === "session_expired")) {
        refreshOnce();
      } else if (answer.status === 401 && error.code === "invalid_token") {
        destroy();
      } else if (answer.status === 409 && error.code === "tenant_not_ready") {
        setupScreen((error.details && error.details.provisioning) || answer.json.provisioning);
        setTimeout(function () { startSession(token); }, RETRY_MS);
      } else if (answer.status === 409) {
        message(body.dataset.msgNotInstalled, "shell-not-installed");
      } else if (answer.status === 403) {
        message(body.dataset.msgWrongApp, "shell-wrong-app");
      } else if (answer.status === 503) {
        message(body.dataset.msgUnavailable, "shell-unavailable");
        setTimeout(function () { startSession(token); }, RETRY_MS * 2);
      } else {
        message(error.message || body.dataset.msgFailed, "shell-failed");
      }
    }).catch(function () {
      message(body.dataset.msgUnavailable, "shell-unavailable");
      setTimeout(function () { startSession(token); }, RETRY_MS * 2);
    });
  }

  // "Open in a new tab" (Settings, inside Salla): a Clerk ticket for this person, then /sso in a new tab.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-action='standalone']");
    if (!button || !state.session) return;
    event.preventDefault();
    var tab = window.open("about:blank", "_blank", "noopener=no");
    fetch("/api/embedded/standalone", {
      method: "POST",
      headers: { "Authorization": "Bearer " + state.session, "Accept": "application/json" },
      credentials: "omit"
    }).then(function (response) { return response.json(); }).then(function (json) {
      if (json.url && tab) { tab.opener = null; tab.location = json.url; }
      else { if (tab) tab.close(); window.Wosool.notify((json.error && json.error.message) || body.dataset.msgFailed, true); }
    }).catch(function () { if (tab) tab.close(); });
  });

  if (!sdk) {
    message(body.dataset.msgFailed, "shell-no-sdk");
    return;
  }
  sdk.onThemeChange(function (theme) {
    document.documentElement.dataset.theme = theme;
    body.dataset.theme = theme;
  });
  sdk.init({ debug: false }).then(function (result) {
    var layout = (result && result.layout) || {};
    if (layout.theme) {
      document.documentElement.dataset.theme = layout.theme;
      body.dataset.theme = layout.theme;
    }
    var token = sdk.auth.getToken();
    if (!token) {
      destroy();
      return;
    }
    startSession(token);
  }).catch(function () {
    message(body.dataset.msgFailed, "shell-init-failed");
  });
})();
