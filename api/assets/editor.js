// The flow editor's enhancements (the page works without them): the live preview follows
// the form as it changes (POST /app/flows/{id}/preview, then postMessage to the preview
// frame, which runs the real widget.js), desktop/mobile preview widths, and each offer shows
// only its own type's parameters.
(function () {
  'use strict';
  var form = document.getElementById('flow-editor');
  var frame = document.getElementById('preview');
  var status = document.getElementById('preview-status');
  if (!form || !frame) return;
  document.documentElement.classList.add('js');

  // Offer parameters: only the selected type's group is shown.
  function syncOffer(select) {
    var box = select.closest('fieldset.offer');
    if (!box) return;
    box.querySelectorAll('[data-offer-params]').forEach(function (g) {
      if (g.getAttribute('data-offer-params') === select.value) g.removeAttribute('data-inactive');
      else g.setAttribute('data-inactive', '');
    });
  }
  var isOfferType = function (el) { return /\.offers\[\d+\]\.type$/.test(el.name || ''); };
  form.querySelectorAll('select').forEach(function (s) { if (isOfferType(s)) syncOffer(s); });

  // Preview widths.
  document.querySelectorAll('[data-width]').forEach(function (b) {
    b.addEventListener('click', function () {
      var w = b.getAttribute('data-width');
      frame.classList.toggle('mobile', w === 'mobile');
      frame.classList.toggle('desktop', w !== 'mobile');
      document.querySelectorAll('[data-width]').forEach(function (o) {
        o.setAttribute('aria-pressed', String(o === b));
      });
    });
  });

  // Live preview.
  var url = form.getAttribute('data-preview');
  var seq = 0;
  var timer = null;
  var marked = null;
  var pending = null; // the last payload, for a frame that (re)loads
  var lastSent = ''; // its text: an unchanged form (e.g. a change event on blur) leaves the preview alone
  function mark(param) {
    if (marked) { marked.removeAttribute('data-live-invalid'); marked = null; }
    if (!param) return;
    var el = form.querySelector('[name="' + param.replace(/"/g, '') + '"]');
    if (el) { el.setAttribute('data-live-invalid', ''); marked = el; }
  }
  function send(payload) {
    pending = payload;
    if (frame.contentWindow) frame.contentWindow.postMessage({ type: 'rtos-preview', payload: payload }, location.origin);
  }
  function update() {
    var n = ++seq;
    var body = new URLSearchParams(new FormData(form));
    fetch(url, { method: 'POST', body: body, credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, j: j }; }); })
      .then(function (res) {
        if (n !== seq) return; // a newer edit is on its way
        if (res.ok) {
          mark(null);
          var text = JSON.stringify(res.j);
          if (text !== lastSent) { lastSent = text; send(res.j); }
          status.textContent = 'Preview updated from your edits (not saved yet). Nothing is recorded.';
          status.setAttribute('data-state', 'ok');
        } else {
          var e = (res.j && res.j.error) || res.j || {};
          mark(e.param);
          status.textContent = 'The preview shows the last valid version: ' + (e.message || 'invalid flow') + (e.param ? ' (' + e.param + ')' : '');
          status.setAttribute('data-state', 'invalid');
        }
      })
      .catch(function () {
        if (n === seq) status.textContent = 'The preview could not be updated; it shows the last valid version.';
      });
  }
  function changed(ev) {
    if (ev && ev.target && isOfferType(ev.target)) syncOffer(ev.target);
    clearTimeout(timer);
    timer = setTimeout(update, 300);
  }
  form.addEventListener('input', changed);
  form.addEventListener('change', changed);
  frame.addEventListener('load', function () { if (pending) send(pending); });
})();
