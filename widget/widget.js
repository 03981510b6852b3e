/*! RetentionOS cancel-flow widget | no dependencies | fails open: the customer can always cancel */
(function (win, doc) {
  'use strict';
  if (win.RetentionOS && win.RetentionOS.version) return; // loaded twice: keep the first copy

  const VERSION = '1.0.0';
  const TAG = 'retentionos-modal';
  const EVENT_ATTEMPT_MS = 8000; // one event POST attempt
  const RETRY_MS = [300, 1000, 2500]; // up to 3 retries, same client_event_id
  // Offline fallback only: the session start sends the flow's strings (api/src/strings.rs,
  // the one source; a test there keeps these equal to its English column).
  const DEFAULT_STRINGS = {
    title: 'Cancel subscription',
    cancel_now: 'Cancel now',
    continue: 'Continue',
    back: 'Back',
    close: 'Close',
    decline_offer: 'No thanks',
    accept_offer: 'Accept offer',
    confirm_cancel: 'Cancel subscription',
    saved_title: 'Thanks for staying!',
    saved_body: 'Your offer has been applied.',
    feedback_placeholder: 'Tell us more (optional)',
    submit: 'Submit',
    loading: 'Loading'
  };

  // The API origin: where this script was loaded from.
  let scriptOrigin = '';
  try {
    let src = doc.currentScript && doc.currentScript.src;
    if (!src) {
      const tags = doc.getElementsByTagName('script');
      for (let i = tags.length - 1; i >= 0 && !src; i--) {
        if (/\/widget(\.[\w-]+)?\.js(\?|#|$)/.test(tags[i].src)) src = tags[i].src;
      }
    }
    if (src) scriptOrigin = new URL(src, location.href).origin;
  } catch (e) { /* keep the page's origin */ }

  const warn = (...a) => { try { console.warn('[RetentionOS]', ...a); } catch (e) { /* no console */ } };
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const within = (p, ms) => Promise.race([p, sleep(ms)]);
  const str = (v) => (typeof v === 'string' ? v : '');

  function uuid() {
    const c = win.crypto;
    try { if (c && c.randomUUID) return c.randomUUID(); } catch (e) { /* insecure context */ }
    const b = new Uint8Array(16);
    try { c.getRandomValues(b); } catch (e) { for (let i = 0; i < 16; i++) b[i] = Math.random() * 256; }
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    const x = Array.from(b, (v) => (v + 256).toString(16).slice(1)).join('');
    return x.slice(0, 8) + '-' + x.slice(8, 12) + '-' + x.slice(12, 16) + '-' + x.slice(16, 20) + '-' + x.slice(20);
  }

  function safeUrl(u) {
    try {
      const url = new URL(u, location.href);
      return /^https?:$/.test(url.protocol) ? url.href : '';
    } catch (e) { return ''; }
  }

  const CSS = [
    '.rtos-overlay{position:fixed;top:0;right:0;bottom:0;left:0;z-index:2147483647;display:flex;align-items:center;justify-content:center;padding:16px;box-sizing:border-box;background:rgba(17,24,39,.6);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#111827;text-align:start;-webkit-text-size-adjust:100%}',
    '.rtos-overlay *{box-sizing:border-box;font:inherit;color:inherit;letter-spacing:normal}',
    '.rtos-dialog{position:relative;width:100%;max-width:480px;max-height:calc(100vh - 32px);overflow:auto;background:#fff;border-radius:12px;box-shadow:0 20px 60px rgba(0,0,0,.35);padding:24px}',
    '.rtos-title{margin:0 40px 16px 0;font-size:20px;font-weight:650;line-height:1.3}',
    '.rtos-x{position:absolute;top:10px;right:10px;width:44px;height:44px;border:0;border-radius:8px;background:transparent;font-size:24px;line-height:1;cursor:pointer;color:#4b5563}',
    '[dir=rtl] .rtos-x{right:auto;left:10px}[dir=rtl] .rtos-title{margin:0 0 16px 40px}',
    '.rtos-x:hover{background:#f3f4f6}',
    '.rtos-p{margin:0 0 16px;color:#374151}',
    '.rtos-reasons{margin:0;padding:0;border:0}',
    '.rtos-reason{display:flex;gap:12px;align-items:center;margin:0 0 8px;padding:12px;border:1px solid #d1d5db;border-radius:8px;cursor:pointer}',
    '.rtos-reason:hover{border-color:#9ca3af}',
    '.rtos-reason input{margin:0;width:18px;height:18px;flex:none;accent-color:#111827}',
    '.rtos-label{display:block;margin:12px 0 6px;font-weight:600}',
    '.rtos-text{display:block;width:100%;min-height:88px;padding:10px;border:1px solid #9ca3af;border-radius:8px;background:#fff;resize:vertical}',
    '.rtos-offer{margin:0 0 12px;padding:16px;border:1px solid #e5e7eb;border-radius:10px;background:#f9fafb}',
    '.rtos-offer h3{margin:0 0 4px;font-size:17px;font-weight:650}',
    '.rtos-offer .rtos-p{margin-bottom:12px}',
    '.rtos-foot{display:flex;flex-wrap:wrap;gap:8px 12px;align-items:center;justify-content:flex-end;margin-top:20px}',
    '.rtos-now{margin-right:auto}',
    '[dir=rtl] .rtos-now{margin-right:0;margin-left:auto}',
    '.rtos-btn{display:inline-block;min-height:44px;padding:10px 18px;border:1px solid #9ca3af;border-radius:8px;background:#fff;font-weight:600;cursor:pointer;text-align:center}',
    '.rtos-btn:hover{background:#f3f4f6}',
    '.rtos-primary{border-color:#111827;background:#111827;color:#fff}',
    '.rtos-primary:hover{background:#374151}',
    '.rtos-danger{border-color:#b91c1c;background:#b91c1c;color:#fff}',
    '.rtos-danger:hover{background:#991b1b}',
    '.rtos-link{min-height:44px;padding:10px 4px;border:0;background:none;color:#1f2937;text-decoration:underline;cursor:pointer}',
    '.rtos-btn:disabled,.rtos-link:disabled{opacity:.55;cursor:default}',
    '.rtos-overlay :focus{outline:3px solid #2563eb;outline-offset:2px}',
    '.rtos-overlay :focus:not(:focus-visible){outline:none}', // own rule: old browsers drop it whole
    '.rtos-overlay .rtos-title:focus,.rtos-overlay .rtos-dialog:focus{outline:none}',
    '.rtos-spin{width:36px;height:36px;margin:24px auto;border:4px solid #e5e7eb;border-top-color:#111827;border-radius:50%;animation:rtos-spin 1s linear infinite}',
    '@keyframes rtos-spin{to{transform:rotate(360deg)}}',
    '@media (prefers-reduced-motion:reduce){.rtos-spin{animation:none}}',
    '@media (max-width:520px){.rtos-overlay{align-items:flex-end;padding:0}.rtos-dialog{max-height:92vh;border-radius:12px 12px 0 0;padding:20px 16px}.rtos-foot{flex-direction:column-reverse;align-items:stretch}.rtos-foot .rtos-btn{width:100%}.rtos-now{margin:0}}',
    '@media (forced-colors:active){.rtos-btn,.rtos-reason,.rtos-offer{border:1px solid CanvasText}}'
  ].join('');

  let seq = 0;
  let current = null;
  let sheet = null;

  // Builds an element; text only ever goes through textContent (flows are tenant-authored).
  function h(tag, props, kids) {
    const el = doc.createElement(tag);
    for (const k in props || {}) {
      const v = props[k];
      if (v == null || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    (kids || []).forEach((c) => c && el.appendChild(c));
    return el;
  }

  function createSession(o) {
    const id = ++seq;
    const timeout = o.timeoutMs > 0 ? +o.timeoutMs : 1500;
    const base = String(o.apiBase || scriptOrigin || location.origin).replace(/\/+$/, '');
    const headers = {
      Authorization: 'Bearer ' + str(o.publishableKey),
      'Content-Type': 'application/json',
      'X-Customer-Token': str(o.token)
    };
    let sameOrigin = false;
    try { sameOrigin = new URL(base, location.href).origin === location.origin; } catch (e) { /* no */ }
    let S = Object.assign({}, DEFAULT_STRINGS);
    let sessionId = null;
    let steps = [];
    let idx = -1;
    let trail = [];
    let reason = null; // the chosen reason
    let followUp = '';
    let lastReasonSent = '';
    let feedback = '';
    const shown = {};
    let ended = false; // an outcome (or a close) happened: no more outcomes
    let saved = false;
    let quiet = !!o.preview;
    let host, root, overlay, dialog, xBtn, titleEl, bodyEl, footEl, prevFocus, prevOverflow, resolve;
    const titleId = 'rtos-title-' + id;
    const promise = new Promise((r) => { resolve = r; });
    const sessionCtrl = win.AbortController ? new AbortController() : null;

    function post(url, body, ms, ctrl) {
      ctrl = ctrl || (win.AbortController ? new AbortController() : null);
      let timer;
      return Promise.race([
        new Promise((_, rej) => { timer = setTimeout(() => { if (ctrl) ctrl.abort(); rej(new Error('timeout')); }, ms); }),
        fetch(url, {
          method: 'POST', headers, body: JSON.stringify(body), mode: 'cors', credentials: 'omit',
          cache: 'no-store', keepalive: sameOrigin, signal: ctrl ? ctrl.signal : undefined
        }).then((r) => r.text().then((t) => {
          let j = null;
          try { j = t ? JSON.parse(t) : null; } catch (e) { /* not JSON */ }
          return { status: r.status, body: j };
        }))
      ]).then((v) => { clearTimeout(timer); return v; }, (e) => { clearTimeout(timer); throw e; });
    }

    // Records an event; resolves true once the API accepted it. Never rejects. Events go out
    // one after the other, so the API receives them in the order they happened.
    let queue = Promise.resolve();
    function send(ev) {
      const p = queue.then(() => sendNow(ev));
      queue = p;
      return p;
    }
    async function sendNow(ev) {
      if (!sessionId) return false;
      const url = base + '/v1/widget/sessions/' + encodeURIComponent(sessionId) + '/events';
      const body = Object.assign({ client_event_id: uuid() }, ev);
      for (let attempt = 0; attempt <= RETRY_MS.length; attempt++) {
        if (attempt) await sleep(RETRY_MS[attempt - 1]);
        try {
          const r = await post(url, body, EVENT_ATTEMPT_MS);
          if (r.status >= 200 && r.status < 300) return true;
          if (r.status < 500 && r.status !== 408 && r.status !== 429) return false; // will not change
        } catch (e) { /* network error or timeout: retry */ }
      }
      return false;
    }

    function call(name, arg) {
      const f = o[name];
      if (typeof f !== 'function') return;
      try { f(arg); } catch (e) { try { console.error('[RetentionOS] ' + name + ' threw', e); } catch (x) { /* */ } }
    }

    // ---- modal shell ---------------------------------------------------------------
    function active() {
      let a = doc.activeElement;
      while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
      return a;
    }
    const inModal = (el) => !!el && (el === host || host.contains(el) || (root !== host && root.contains(el)));
    function focusables() {
      return Array.prototype.filter.call(
        dialog.querySelectorAll('button,a[href],input,textarea,select,[tabindex="0"]'),
        (el) => !el.disabled && el.getClientRects().length && !(el.type === 'radio' && !el.checked && radioSkip(el))
      );
    }
    // Tab visits one radio per group: the checked one, or the first when none is.
    function radioSkip(el) {
      const g = root.querySelectorAll('input[type=radio][name="' + el.name + '"]');
      const checked = Array.prototype.some.call(g, (r) => r.checked);
      return checked || g[0] !== el;
    }
    function onKey(e) {
      if (e.key === 'Escape' || e.key === 'Esc') {
        if (e.isComposing) return;
        e.preventDefault();
        e.stopPropagation();
        close();
      } else if (e.key === 'Tab') {
        const list = focusables();
        if (!list.length) { e.preventDefault(); dialog.focus(); return; }
        const a = active();
        const first = list[0];
        const last = list[list.length - 1];
        const inside = !!a && a !== dialog && dialog.contains(a);
        if (e.shiftKey ? a === first || !inside : a === last || !inside) {
          e.preventDefault();
          (e.shiftKey ? last : first).focus();
        }
      }
    }
    function onFocusIn(e) {
      if (!inModal(e.target)) { const l = focusables(); (l[0] || dialog).focus(); }
    }

    function mount() {
      prevFocus = active();
      host = doc.createElement(TAG);
      // CSSOM, not a style attribute or a <style> element, where possible: pages with a strict
      // Content-Security-Policy (no 'unsafe-inline' styles) still get a styled widget.
      [['all', 'initial'], ['display', 'block'], ['position', 'fixed'], ['top', '0'], ['left', '0'],
        ['z-index', '2147483647']].forEach((p) => host.style.setProperty(p[0], p[1], 'important'));
      root = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;
      try {
        // No shadow DOM (rtos- prefixed classes then) or no constructable sheets: a <style>.
        if (root === host || !('adoptedStyleSheets' in root)) throw 0;
        if (!sheet) { sheet = new CSSStyleSheet(); sheet.replaceSync(CSS); }
        root.adoptedStyleSheets = [sheet];
      } catch (e) { root.appendChild(h('style', { text: CSS })); }
      titleEl = h('h2', { id: titleId, class: 'rtos-title', tabindex: '-1' });
      bodyEl = h('div');
      footEl = h('div', { class: 'rtos-foot' });
      dialog = h('div', { class: 'rtos-dialog', role: 'dialog', 'aria-modal': 'true', 'aria-label': S.loading, 'aria-busy': 'true', tabindex: '-1' }, [
        (xBtn = h('button', { type: 'button', class: 'rtos-x', 'aria-label': S.close, text: '\u00d7', onclick: close })),
        bodyEl
      ]);
      bodyEl.appendChild(h('div', { class: 'rtos-spin', role: 'progressbar', 'aria-label': S.loading }));
      overlay = h('div', { class: 'rtos-overlay' }, [dialog]);
      // A click on the backdrop keeps the focus where it is (inside the modal).
      overlay.addEventListener('mousedown', (e) => { if (e.target === overlay) e.preventDefault(); });
      root.appendChild(overlay);
      (doc.body || doc.documentElement).appendChild(host);
      const de = doc.documentElement;
      prevOverflow = de.style.overflow;
      de.style.overflow = 'hidden';
      doc.addEventListener('keydown', onKey, true);
      doc.addEventListener('focusin', onFocusIn, true);
      if (!quiet) dialog.focus();
    }

    function unmount() {
      if (current === api) current = null;
      if (!host) return;
      doc.removeEventListener('keydown', onKey, true);
      doc.removeEventListener('focusin', onFocusIn, true);
      if (host.parentNode) host.parentNode.removeChild(host);
      doc.documentElement.style.overflow = prevOverflow;
      host = null;
      try { if (prevFocus && prevFocus.isConnected !== false && prevFocus.focus) prevFocus.focus(); } catch (e) { /* */ }
    }

    // Replaces the modal's content; focus goes to the new title so it is announced.
    function screen(title, kids, foot, withCancelNow) {
      titleEl.textContent = title || S.title;
      dialog.removeAttribute('aria-label');
      dialog.removeAttribute('aria-busy');
      dialog.setAttribute('aria-labelledby', titleId);
      xBtn.disabled = false;
      bodyEl.textContent = '';
      bodyEl.appendChild(titleEl);
      kids.forEach((k) => k && bodyEl.appendChild(k));
      footEl.textContent = '';
      if (withCancelNow) footEl.appendChild(btn(S.cancel_now, 'rtos-link rtos-now', () => cancel('cancel_now')));
      foot.forEach((k) => k && footEl.appendChild(k));
      bodyEl.appendChild(footEl);
      dialog.scrollTop = 0;
      if (quiet) quiet = false; // a preview's first screen leaves the focus in the editor
      else titleEl.focus();
    }

    function btn(text, cls, fn, extra) {
      return h('button', Object.assign({ type: 'button', class: cls, text, onclick: guard(fn) }, extra));
    }
    function guard(fn) {
      return function (e) {
        try {
          const r = fn(e);
          if (r && r.catch) r.catch(failOpen);
        } catch (err) { failOpen(err); }
      };
    }
    function busy() {
      dialog.setAttribute('aria-busy', 'true');
      Array.prototype.forEach.call(dialog.querySelectorAll('button,input,textarea'), (b) => { b.disabled = true; });
    }

    // ---- outcomes ------------------------------------------------------------------
    function failOpen(err) {
      if (err) warn('unavailable, handing over to the cancel path', err);
      if (ended) { unmount(); return; }
      ended = true;
      if (sessionCtrl) sessionCtrl.abort();
      unmount();
      call('onCancel', { reason: 'unavailable' });
      resolve({ outcome: 'canceled', reason: 'unavailable' });
    }

    async function cancel(via) {
      if (ended) return;
      ended = true;
      busy();
      await within(send({ type: 'cancel_confirmed' }), timeout);
      unmount();
      call('onCancel', { reason: via, session_id: sessionId });
      resolve({ outcome: 'canceled', reason: via, session_id: sessionId });
    }

    async function accept(offer) {
      if (ended) return;
      ended = true;
      busy();
      await within(send({ type: 'offer_accepted', offer_id: offer.id }), timeout);
      saved = true;
      screen(S.saved_title, [h('p', { class: 'rtos-p', text: S.saved_body })], [btn(S.close, 'rtos-btn rtos-primary', close)]);
      call('onSaved', { offer, session_id: sessionId });
      resolve({ outcome: 'saved', offer, session_id: sessionId });
      const url = offer.type === 'redirect' && offer.redirect && safeUrl(offer.redirect.url);
      if (url) location.assign(url);
    }

    // Escape or the close button: abandoned before an outcome, or the saved screen closed.
    function close() {
      if (!host) return;
      if (saved) {
        unmount();
        call('onClose', { outcome: 'saved', session_id: sessionId });
        return;
      }
      if (ended) return; // an outcome is being recorded
      ended = true;
      if (sessionCtrl) sessionCtrl.abort();
      if (sessionId) send({ type: 'abandoned' });
      unmount();
      call('onClose', { outcome: 'abandoned', session_id: sessionId });
      resolve({ outcome: 'abandoned', session_id: sessionId });
    }

    // ---- steps ---------------------------------------------------------------------
    function offersFor(step) {
      return (Array.isArray(step.offers) ? step.offers : []).filter((of) =>
        of && of.id != null && (!Array.isArray(of.reason_codes) || !of.reason_codes.length ||
          (reason && of.reason_codes.indexOf(reason.code) >= 0)));
    }
    const usable = (s) => s.type !== 'offer' || offersFor(s).length > 0;
    function nextIndex(i) {
      while (i < steps.length && !usable(steps[i])) i++;
      return i < steps.length ? i : -1;
    }
    function next() {
      const n = nextIndex(idx + 1);
      if (n < 0) return cancel('confirmed'); // defensive: the last step always is a confirm
      trail.push(idx);
      show(n);
    }
    function back() {
      if (trail.length) show(trail.pop());
    }
    function navButtons(primary) {
      return [trail.length ? btn(S.back, 'rtos-btn', back) : null, primary];
    }

    function show(i) {
      idx = i;
      const step = steps[i];
      const t = step.type;
      if (t === 'survey') return survey(step);
      if (t === 'feedback') return feedbackStep(step);
      if (t === 'offer') return offerStep(step);
      return confirmStep(step);
    }

    function survey(step) {
      const name = 'rtos-reason-' + id;
      const taId = 'rtos-follow-' + id;
      const follow = h('div');
      const cont = btn(S.continue, 'rtos-btn rtos-primary', () => {
        const text = followUp.trim();
        const sig = reason.code + '\n' + text;
        if (sig !== lastReasonSent) {
          lastReasonSent = sig;
          send({ type: 'reason_selected', reason_code: reason.code, text: text || undefined });
        }
        next();
      }, { disabled: !reason });
      function renderFollow() {
        follow.textContent = '';
        if (reason && str(reason.follow_up)) {
          const ta = h('textarea', { id: taId, class: 'rtos-text', maxlength: '2000' });
          ta.value = followUp;
          ta.addEventListener('input', () => { followUp = ta.value; });
          follow.appendChild(h('label', { class: 'rtos-label', for: taId, text: reason.follow_up }));
          follow.appendChild(ta);
        }
      }
      const group = h('div', { class: 'rtos-reasons', role: 'radiogroup', 'aria-labelledby': titleId },
        step.reasons.map((r) => {
          const input = h('input', { type: 'radio', name, value: str(r.code) });
          input.checked = !!reason && reason.code === r.code;
          input.addEventListener('change', guard(() => {
            if (!reason || reason.code !== r.code) followUp = '';
            reason = r;
            cont.disabled = false;
            renderFollow();
          }));
          return h('label', { class: 'rtos-reason' }, [input, h('span', { text: str(r.label) })]);
        }));
      renderFollow();
      screen(step.title, [group, follow], navButtons(cont), true);
    }

    function feedbackStep(step) {
      const taId = 'rtos-feedback-' + id;
      const ta = h('textarea', { id: taId, class: 'rtos-text', maxlength: '5000', 'aria-labelledby': titleId,
        placeholder: str(step.placeholder) || S.feedback_placeholder });
      ta.value = feedback;
      ta.addEventListener('input', () => { feedback = ta.value; });
      const submit = btn(S.submit, 'rtos-btn rtos-primary', () => {
        const text = feedback.trim();
        if (text) send({ type: 'feedback', text });
        next();
      });
      screen(step.title, [ta], navButtons(submit), true);
    }

    function offerStep(step) {
      const offers = offersFor(step);
      const cards = offers.map((of) => h('div', { class: 'rtos-offer' }, [
        h('h3', { text: str(of.title) }),
        str(of.description) ? h('p', { class: 'rtos-p', text: of.description }) : null,
        btn(str(of.cta) || S.accept_offer, 'rtos-btn rtos-primary', () => accept(of))
      ]));
      const decline = btn(S.decline_offer, 'rtos-btn', () => {
        offers.forEach((of) => send({ type: 'offer_declined', offer_id: of.id }));
        next();
      });
      screen(step.title, cards, navButtons(decline), true);
      offers.forEach((of) => {
        if (!shown[of.id]) { shown[of.id] = 1; send({ type: 'offer_shown', offer_id: of.id }); }
      });
    }

    function confirmStep(step) {
      screen(step.title, [str(step.body) ? h('p', { class: 'rtos-p', text: step.body }) : null],
        navButtons(btn(S.confirm_cancel, 'rtos-btn rtos-danger', () => cancel('confirmed'))), true);
    }

    // ---- start ---------------------------------------------------------------------
    async function start() {
      mount();
      const body = {};
      if (navigator.language) body.language = navigator.language;
      // `preview`: a session start's answer given by the dashboard's flow editor; no
      // session, no events (sessionId stays null), nothing is recorded.
      const res = o.preview && typeof o.preview === 'object' ? { status: 200, body: o.preview }
        : await post(base + '/v1/widget/sessions', body, timeout, sessionCtrl);
      if (ended) return;
      const d = res.body;
      if ((res.status !== 201 && res.status !== 200) || !d || typeof d !== 'object') {
        throw new Error('session request answered ' + res.status);
      }
      sessionId = d.session_id || null;
      if (d.strings && typeof d.strings === 'object') {
        for (const k in d.strings) if (str(d.strings[k])) S[k] = d.strings[k];
      }
      const flow = d.flow;
      if (!flow) {
        ended = true;
        unmount();
        call('onCancel', { reason: 'no_flow', session_id: sessionId });
        resolve({ outcome: 'canceled', reason: 'no_flow', session_id: sessionId });
        return;
      }
      steps = (Array.isArray(flow.steps) ? flow.steps : []).filter((s) => s && (
        (s.type === 'survey' && Array.isArray(s.reasons) && s.reasons.length) ||
        s.type === 'feedback' || s.type === 'confirm' || (s.type === 'offer' && !d.holdout)));
      const ci = steps.findIndex((s) => s.type === 'confirm');
      if (ci < 0) steps.push({ id: '_confirm', type: 'confirm', title: S.confirm_cancel });
      else steps.length = ci + 1; // nothing after the confirmation
      const lang = str(flow.language) || str(d.language);
      if (lang) {
        dialog.setAttribute('lang', lang);
        if (/^(ar|fa|he|iw|ur|ps|yi|dv|sd|ug)\b/i.test(lang)) overlay.setAttribute('dir', 'rtl');
      }
      xBtn.setAttribute('aria-label', S.close);
      show(nextIndex(0));
    }

    const api = { promise, close };
    Promise.resolve().then(start).catch(failOpen);
    return api;
  }

  function open(options) {
    try {
      if (current) return current.promise;
      if (!win.fetch || !win.Promise) throw new Error('unsupported browser');
      current = createSession(options || {});
      return current.promise;
    } catch (e) {
      current = null;
      warn('unavailable, handing over to the cancel path', e);
      try { if (options && typeof options.onCancel === 'function') options.onCancel({ reason: 'unavailable' }); } catch (x) { /* */ }
      return Promise.resolve({ outcome: 'canceled', reason: 'unavailable' });
    }
  }

  win.RetentionOS = {
    version: VERSION,
    open,
    close() { if (current) current.close(); }
  };
})(window, document);
