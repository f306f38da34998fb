/* The kiosk's only script: idle timer, password toggles, print buttons, error summary.
   Loaded with defer on every page; no inline script (CSP script-src 'self'). */
(function () {
  'use strict';
  var doc = document;
  var body = doc.body;

  /* Show / hide password. A shown password is hidden again before any form is sent,
     so the browser never keeps it in its autofill history as plain text. */
  function setShown(btn, shown) {
    var input = doc.getElementById(btn.getAttribute('data-toggle-password'));
    if (!input) return;
    input.type = shown ? 'text' : 'password';
    if (btn.hasAttribute('aria-pressed')) btn.setAttribute('aria-pressed', String(shown));
    var label = btn.getAttribute(shown ? 'data-label-hide' : 'data-label-show');
    if (label) btn.textContent = label;
  }
  doc.querySelectorAll('[data-toggle-password]').forEach(function (btn) {
    btn.addEventListener('click', function () {
      var input = doc.getElementById(btn.getAttribute('data-toggle-password'));
      if (input) setShown(btn, input.type === 'password');
    });
  });
  doc.addEventListener('submit', function () {
    doc.querySelectorAll('[data-toggle-password]').forEach(function (btn) { setShown(btn, false); });
  }, true);

  /* A second press while the first is on its way is not sent again: a double tap would
     otherwise cancel the first answer (a new card number, a seat) for a second request.
     (Sent again later, the form's key makes the registry answer it once all the same.) */
  var SENT_FOR_MS = 10000;
  doc.addEventListener('submit', function (e) {
    var form = e.target;
    var sent = Number(form.getAttribute('data-sent-at') || 0);
    if (Date.now() - sent < SENT_FOR_MS) { e.preventDefault(); return; }
    form.setAttribute('data-sent-at', String(Date.now()));
  });
  window.addEventListener('pageshow', function () {  /* back to a page the browser kept */
    doc.querySelectorAll('form[data-sent-at]').forEach(function (f) { f.removeAttribute('data-sent-at'); });
  });

  /* A barcode scanner types the card number, then Enter: when the next field is an empty
     password box, Enter moves there instead of sending a form that can only fail. */
  doc.addEventListener('keydown', function (e) {
    var el = e.target;
    if (e.key !== 'Enter' || e.isComposing || el.tagName !== 'INPUT' || !el.form) return;
    var fields = Array.prototype.filter.call(el.form.elements, function (f) {
      return f.tagName !== 'FIELDSET' && f.type !== 'hidden';
    });
    var next = fields[fields.indexOf(el) + 1];
    if (el.type !== 'password' && next && next.type === 'password' && !next.value) {
      e.preventDefault();
      next.focus();
    }
  });

  doc.querySelectorAll('[data-print]').forEach(function (el) {
    el.addEventListener('click', function (e) { e.preventDefault(); window.print(); });
  });

  /* Error summary: focus it so it is read first; its links move focus to the field itself
     (not only scroll) and keep the field's label in view. */
  var summary = doc.querySelector('.error-summary');
  if (summary) {
    summary.focus();
    summary.addEventListener('click', function (e) {
      var link = e.target.closest('a[href^="#"]');
      var field = link && doc.getElementById(link.getAttribute('href').slice(1));
      if (!field) return;
      e.preventDefault();
      var box = field.closest('.field, fieldset') || field;
      box.scrollIntoView();
      field.focus({ preventScroll: true });
    });
  }

  /* ---- Idle timer ---- */
  var data = body.dataset;
  if (data.atRest === '1') return; // default start page, nothing to wipe: do nothing at all

  var warning = (parseInt(data.idleWarning, 10) || 60) * 1000;
  var countdown = parseInt(data.idleCountdown, 10) || 30;
  var hasVisit = data.hasVisit === '1';
  var extendUrl = data.extendUrl;
  var PING_EVERY = 20000;
  var dialog = doc.getElementById('idle-dialog');
  var resetForm = doc.getElementById('reset-form');
  var tokenInput = doc.querySelector('input[name=csrf_token]');
  var now = Date.now;
  var lastActivity = now();
  var lastPing = lastActivity; // loading this page already counted as activity on the server
  var pingPending = false;
  var warnedAt = 0; // when the dialog opened; 0 = closed
  var ended = false;
  var shownNumber = dialog && dialog.querySelector('[data-countdown]');
  var spokenNumber = null;

  function end() {
    if (ended) return;
    ended = true;
    if (resetForm) resetForm.submit();
    else location.href = '/';
  }

  function ping() {
    if (!extendUrl || ended) return;
    lastPing = now();
    pingPending = false;
    var headers = {};
    if (tokenInput) headers['X-CSRFToken'] = tokenInput.value;
    fetch(extendUrl, { method: 'POST', headers: headers, credentials: 'same-origin', redirect: 'manual' })
      .then(function (r) {
        // A redirect: the server had already ended the visit. Its CSRF secret is gone, so the
        // reset form would only meet "page expired": open the start page, which explains.
        if (r.type === 'opaqueredirect' && !ended) { ended = true; location.replace(data.homeUrl || '/'); }
      })
      .catch(function () { /* offline for a moment: the next activity tries again */ });
  }

  /* Activity resets the timer. The server is told at most every 20 s, and always at the
     end of a burst (trailing ping), so its clock never lags ours by more than 20 s and a
     patron slowly filling in a long form is not logged out behind their back. */
  function activity() {
    if (warnedAt || ended) return; // while "Are you still there?" is open, only its button answers
    lastActivity = now();
    if (lastActivity - lastPing >= PING_EVERY) ping();
    else pingPending = true;
  }
  ['pointerdown', 'keydown', 'input', 'wheel', 'touchstart', 'scroll'].forEach(function (type) {
    doc.addEventListener(type, activity, { capture: true, passive: true });
  });

  /* Screen readers: the visible number changes every second but is aria-hidden; a hidden
     copy in the same live region changes only every 10 s and in the last 5 s, so the
     patron hears "30 s … 20 s … 10 s, 5, 4, 3, 2, 1" instead of a flood of numbers. */
  var suffix = '';
  if (shownNumber) {
    var box = shownNumber.parentNode;
    while (shownNumber.nextSibling) suffix += box.removeChild(shownNumber.nextSibling).textContent;
    shownNumber.setAttribute('aria-hidden', 'true');
    var shownSuffix = doc.createElement('span');
    shownSuffix.setAttribute('aria-hidden', 'true');
    shownSuffix.textContent = suffix;
    spokenNumber = doc.createElement('span');
    spokenNumber.className = 'visually-hidden';
    box.appendChild(shownSuffix);
    box.appendChild(spokenNumber);
  }
  function showLeft(left) {
    if (!shownNumber) return;
    shownNumber.textContent = String(left);
    if (left % 10 === 0 || left <= 5) spokenNumber.textContent = left + suffix;
  }

  function warn() {
    if (!hasVisit || !dialog || typeof dialog.showModal !== 'function') { end(); return; }
    warnedAt = now();
    if (spokenNumber) spokenNumber.textContent = '';
    showLeft(countdown);
    if (!dialog.open) dialog.showModal();
    var btn = dialog.querySelector('[data-idle-continue]');
    if (btn) btn.focus();
  }

  function carryOn() {
    if (ended) return;
    var wasWarned = warnedAt;
    warnedAt = 0;
    if (dialog.open) dialog.close();
    if (wasWarned) { lastActivity = now(); ping(); }
  }

  if (dialog) {
    var btn = dialog.querySelector('[data-idle-continue]');
    if (btn) btn.addEventListener('click', carryOn);
    // Escape means "I am still here" too; closing by any other way as well.
    dialog.addEventListener('cancel', function (e) { e.preventDefault(); carryOn(); });
    dialog.addEventListener('close', carryOn);
  }

  // One clock, checked every second against real time (robust against timer throttling).
  setInterval(function () {
    if (ended) return;
    var t = now();
    if (warnedAt) {
      var left = countdown - Math.floor((t - warnedAt) / 1000);
      if (left <= 0) end();
      else showLeft(left);
    } else if (t - lastActivity >= warning) {
      warn();
    } else if (pingPending && t - lastPing >= PING_EVERY) {
      ping();
    }
  }, 1000);
})();
