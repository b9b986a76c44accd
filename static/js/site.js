/* mcsite — small progressive enhancement, no library. Every form works
   without it; with it "Backup Now" starts without a page load and progress
   panels poll a JSON endpoint that only reads what the worker recorded. */
(function () {
  "use strict";

  var POLL_MS = 700;

  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function render(panel, data) {
    var bar = panel.querySelector(".progress-bar");
    var meter = panel.querySelector("[role=progressbar]");
    var percent = panel.querySelector("[data-progress-percent]");
    var message = panel.querySelector("[data-progress-message]");
    var value = Math.max(0, Math.min(100, data.percent || 0));
    if (bar) bar.style.width = value + "%";
    if (meter) meter.setAttribute("aria-valuenow", String(value));
    if (percent) percent.textContent = value + " %";
    if (message) message.textContent = data.message || "";
    panel.dataset.state = data.done ? (data.ok ? "succeeded" : "failed") : "running";
    // The page's status badge follows the run (it was rendered when the page loaded).
    if (data.status && data.status_label) {
      document.querySelectorAll("[data-status-badge]").forEach(function (badge) {
        badge.className = badge.className.replace(/\bstate-[a-z_]+/g, "").trim() + " state-" + data.status;
        badge.textContent = data.status_label;
      });
    }
  }

  /* After a run ends, swap in fresh copies of the page's sections (history,
     charts…) so the new backup shows up without losing the result above. */
  function refreshSections(ids) {
    if (!ids) return Promise.resolve();
    return fetch(window.location.pathname, { headers: { Accept: "text/html" }, credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        ids.split(/\s+/).forEach(function (id) {
          var now = document.getElementById(id), next = fresh.getElementById(id);
          if (now && next) now.replaceWith(next);
        });
      });
  }

  function poll(panel) {
    var url = panel.dataset.pollUrl;
    if (!url || panel.dataset.polling === "1") return;
    panel.dataset.polling = "1";
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.json();
        })
        .then(function (data) {
          render(panel, data);
          if (!data.done) { window.setTimeout(tick, POLL_MS); return; }
          panel.dataset.polling = "0";
          document.querySelectorAll("[data-backup-now] button").forEach(function (b) { b.disabled = false; });
          if (panel.hasAttribute("data-reload-on-done")) { window.setTimeout(function () { window.location.reload(); }, 800); return; }
          refreshSections(panel.dataset.refresh);
        })
        .catch(function () {
          // A dropped request (server restart, flaky Wi-Fi) is retried, slower.
          window.setTimeout(tick, POLL_MS * 4);
        });
    }
    tick();
  }

  function startBackup(form) {
    var panel = document.getElementById(form.dataset.panel || "progress");
    var button = form.querySelector("button");
    if (button) button.disabled = true;
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    })
      .then(function (response) { return response.json().then(function (data) { return [response, data]; }); })
      .then(function (pair) {
        var response = pair[0], data = pair[1];
        if (!response.ok) {
          render(panel, { percent: 0, done: true, ok: false, message: data.error || "The backup could not start." });
          if (button) button.disabled = false;
          return;
        }
        panel.dataset.pollUrl = data.progress_url;
        render(panel, data);
        poll(panel);
      })
      .catch(function () { form.submit(); });  // fall back to the plain form post
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.dataset.confirm) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); return; }
      // Confirmed here, so the server need not ask again (without JS it shows a page that asks).
      if (form.dataset.confirmField && !form.querySelector("input[name='" + form.dataset.confirmField + "']")) {
        var field = document.createElement("input");
        field.type = "hidden"; field.name = form.dataset.confirmField; field.value = "1";
        form.appendChild(field);
      }
    }
    if (form.hasAttribute("data-backup-now") && window.fetch) { event.preventDefault(); startBackup(form); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll-url]").forEach(function (panel) {
      if (panel.dataset.pollUrl) poll(panel);
    });
    // "Enable Automated Backups": the schedule fields follow the checkbox.
    document.querySelectorAll("[data-toggles]").forEach(function (box) {
      var target = document.getElementById(box.dataset.toggles);
      function sync() { if (target) target.classList.toggle("is-off", !box.checked); }
      box.addEventListener("change", sync);
      sync();
    });
  });
})();
