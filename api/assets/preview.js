// The flow editor's preview frame: runs the real widget.js with its `preview` option (a
// session start's answer, no session and no events) on the saved draft, and again on every
// version the editor sends (postMessage from our own origin only).
(function () {
  'use strict';
  var data = null;
  try { data = JSON.parse(document.getElementById('rtos-preview-data').textContent); } catch (e) { data = null; }
  var outcome = document.getElementById('preview-outcome');
  var generation = 0;
  function open() {
    var g = ++generation;
    window.RetentionOS.close();
    outcome.textContent = '';
    document.body.removeAttribute('data-outcome');
    if (!data) return;
    document.body.setAttribute('data-generation', String(g));
    window.RetentionOS.open({ preview: data }).then(function (r) {
      if (g !== generation) return; // replaced by a newer version
      var what = r.offer ? ' (' + r.offer.title + ')' : '';
      outcome.textContent = 'The preview ended: ' + r.outcome + what + '. Nothing was recorded.';
      document.body.setAttribute('data-outcome', r.outcome);
    });
  }
  window.addEventListener('message', function (e) {
    if (e.origin !== location.origin || !e.data || e.data.type !== 'rtos-preview') return;
    data = e.data.payload;
    var err = document.getElementById('preview-error');
    if (err) err.remove();
    open();
  });
  document.getElementById('preview-restart').addEventListener('click', open);
  open();
})();
