// Wosool merchant app: what every page shares (standalone and inside Salla). htmx drives navigation; this
// file keeps the language/theme on every request, adds the app session's bearer when the shell has one,
// keeps the tabs in step with the screen, draws charts and shows notices. No inline script, no eval.
(function () {
  "use strict";
  var body = document.body;
  var lang = body.dataset.lang || document.documentElement.lang || "ar";
  var theme = body.dataset.theme || "auto";

  // The shell (shell.js) sets this once Wosool's app session exists; it lives in memory only.
  window.Wosool = window.Wosool || { session: null, onUnauthorized: null, toast: null };

  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail;
    if (window.Wosool.session) {
      detail.headers["Authorization"] = "Bearer " + window.Wosool.session;
      detail.headers["X-Wosool-Embedded"] = "1";
    }
    if (detail.verb === "get") {
      if (!/[?&]lang=/.test(detail.path) && !("lang" in detail.parameters)) detail.parameters.lang = lang;
      if (theme !== "auto" && !/[?&]theme=/.test(detail.path) && !("theme" in detail.parameters)) detail.parameters.theme = theme;
    }
  });

  // Errors come as the JSON envelope: 401 asks the shell to recover (refresh or destroy); others show a line.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    var error = {};
    try { error = JSON.parse(xhr.responseText).error || {}; } catch (e) { /* not JSON */ }
    if (xhr.status === 401 && typeof window.Wosool.onUnauthorized === "function") {
      window.Wosool.onUnauthorized(error.code);
      return;
    }
    // Maintenance and read-only answers are said in the page's language.
    var localized = { maintenance: body.dataset.msgMaintenance, tenant_read_only: body.dataset.msgReadOnly };
    notify(localized[error.code] || error.message || body.dataset.msgFailed || "Error", true);
  });

  document.addEventListener("wosool:toast", function (event) {
    notify((event.detail && event.detail.message === "saved" ? body.dataset.msgSaved : event.detail.message) || "", false);
  });

  function notify(message, isError) {
    if (!message) return;
    if (typeof window.Wosool.toast === "function" && window.Wosool.toast(message, isError)) return;
    var box = document.getElementById("app-toast");
    if (!box) {
      box = document.createElement("div");
      box.id = "app-toast";
      box.setAttribute("role", "status");
      box.className = "notice";
      box.dataset.testid = "toast";
      var main = document.getElementById("screen");
      main.parentNode.insertBefore(box, main);
    }
    box.textContent = message;
    box.className = isError ? "notice health danger" : "notice";
  }
  window.Wosool.notify = notify;

  function syncTabs(root) {
    var screen = root.querySelector ? root.querySelector("[data-screen].screen") : null;
    if (!screen) return;
    var name = screen.dataset.screen;
    document.querySelectorAll(".tabs a[data-screen]").forEach(function (a) {
      if (a.dataset.screen === name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    if (screen.dataset.title) document.title = screen.dataset.title;
    if (typeof window.Wosool.onScreen === "function") window.Wosool.onScreen(name, screen.dataset.title);
  }

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function drawCharts(root) {
    if (!window.Chart || !root.querySelectorAll) return;
    root.querySelectorAll("canvas[data-chart='trend']").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      canvas.dataset.drawn = "1";
      var rtl = canvas.dataset.rtl === "true";
      var primary = css("--primary") || "#004956";
      var muted = css("--muted") || "#6b7280";
      var border = css("--border") || "#e5e7eb";
      var labels = JSON.parse(canvas.dataset.labels || "[]");
      new window.Chart(canvas, {
        type: "bar",
        data: {
          labels: labels,
          datasets: [
            { type: "line", label: canvas.dataset.labelSales, data: JSON.parse(canvas.dataset.sales || "[]"),
              borderColor: primary, backgroundColor: primary, yAxisID: "sales", tension: 0.3, pointRadius: 0 },
            { type: "bar", label: canvas.dataset.labelOrders, data: JSON.parse(canvas.dataset.orders || "[]"),
              backgroundColor: border, yAxisID: "orders" }
          ]
        },
        options: {
          responsive: true, maintainAspectRatio: false, animation: false,
          locale: lang === "ar" ? "ar-SA-u-nu-latn" : "en-SA",
          interaction: { mode: "index", intersect: false },
          plugins: {
            legend: { rtl: rtl, textDirection: rtl ? "rtl" : "ltr", labels: { color: muted, font: { family: "IBM Plex Sans Arabic" } } },
            tooltip: { rtl: rtl, textDirection: rtl ? "rtl" : "ltr" }
          },
          scales: {
            x: { reverse: rtl, ticks: { color: muted }, grid: { display: false } },
            sales: { position: rtl ? "right" : "left", beginAtZero: true, ticks: { color: muted }, grid: { color: border } },
            orders: { position: rtl ? "left" : "right", beginAtZero: true, ticks: { color: muted, precision: 0 }, grid: { display: false } }
          }
        }
      });
    });
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    syncTabs(event.detail.elt);
    drawCharts(event.detail.elt);
    if (typeof window.Wosool.onLoaded === "function") window.Wosool.onLoaded();
  });
  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
  });
})();
