/* qualpipe review: keyboard review, text selection, decisions and re-runs.
   Plain JavaScript, no libraries; every action also works as a plain form without it. */
(function () {
  'use strict';

  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute('content');
  var items = Array.prototype.slice.call(document.querySelectorAll('.queue .item'));
  var toastEl = document.getElementById('toast');
  var toastTimer = null;

  function toast(message, isError) {
    if (!toastEl) { return; }
    toastEl.textContent = message;
    toastEl.classList.toggle('error', !!isError);
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { toastEl.hidden = true; }, isError ? 6000 : 2500);
  }

  function send(method, url, body) {
    var opts = {
      method: method,
      credentials: 'same-origin',
      headers: { 'X-CSRF-Token': csrf, 'Accept': 'application/json' }
    };
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok && r.status !== 409) { throw new Error(j.error || r.statusText); }
        return j;
      });
    });
  }

  // -- moving between items ------------------------------------------------------------

  function currentItem() {
    var a = document.activeElement;
    var el = a && a.closest ? a.closest('.item') : null;
    return el || document.querySelector('.item.current');
  }

  function focusItem(el) {
    items.forEach(function (i) { i.classList.remove('current'); });
    if (!el) { return; }
    el.classList.add('current');
    el.focus({ preventScroll: true });
    el.scrollIntoView({ block: 'nearest' });
  }

  function move(step) {
    if (!items.length) { return; }
    var i = items.indexOf(currentItem());
    var n = i < 0 ? 0 : i + step;
    if (n >= 0 && n < items.length) {
      focusItem(items[n]);
    } else {
      var link = document.querySelector(step > 0 ? '.pager a[rel="next"]' : '.pager a[rel="prev"]');
      if (link) { link.focus(); }
    }
  }

  function nextOpen(from) {
    var i = items.indexOf(from);
    for (var j = i + 1; j < items.length; j++) {
      if (items[j].dataset.decided === 'no') { return items[j]; }
    }
    return items[i + 1] || from;
  }

  // -- deciding --------------------------------------------------------------------------

  function holderOf(form) {
    return form.closest('.quote') || form.closest('.item');
  }

  function showDecision(holder, action, label, id) {
    if (!holder) { return; }
    var badge = holder.querySelector('.badge');
    if (badge) {
      badge.dataset.state = action || 'open';
      badge.textContent = label;
    }
    holder.dataset.decided = action ? 'yes' : 'no';
    var undo = holder.querySelector('form.undo');
    if (undo) {
      undo.querySelector('input[name="id"]').value = id || '';
      undo.hidden = !action;
    }
  }

  function submitDecision(form, action) {
    var holder = holderOf(form);
    var body = {
      target: form.querySelector('input[name="target"]').value,
      action: action,
      ref: JSON.parse(form.querySelector('input[name="ref"]').value),
      value: {},
      memo: ''
    };
    var memo = form.elements.namedItem('memo');
    if (memo) { body.memo = memo.value; }
    if (action === 'rename') { body.value.name = form.querySelector('input[name="name"]').value; }
    if (action === 'merge') { body.value.into = form.querySelector('select[name="into"]').value; }
    return send('POST', '/api/decide', body).then(function (j) {
      showDecision(holder, action, j.state, j.id);
      toast('Saved: ' + j.state);
      var item = form.closest('.item');
      if (item && item === holder && (action === 'accept' || action === 'reject')) {
        focusItem(nextOpen(item));
      }
      return j;
    }).catch(function (e) { toast(e.message, true); });
  }

  function submitUndo(form) {
    var holder = holderOf(form);
    var id = form.querySelector('input[name="id"]').value;
    return send('POST', '/api/undo', { id: id }).then(function () {
      if (holder && !form.classList.contains('undo-now')) {
        showDecision(holder, null, 'open', '');
        focusItem(holder.closest('.item'));
      } else {
        var li = form.closest('li');
        if (li) { li.remove(); }
      }
      toast('Undone');
    }).catch(function (e) { toast(e.message, true); });
  }

  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (form.classList.contains('decide')) {
      e.preventDefault();
      var button = e.submitter;
      if (button && button.value) { submitDecision(form, button.value); }
    } else if (form.classList.contains('undo') || form.classList.contains('undo-now') ||
               (form.action && /\/api\/undo$/.test(form.action))) {
      e.preventDefault();
      submitUndo(form);
    } else if (form.id === 'rerun-form') {
      e.preventDefault();
      startRerun();
    }
  });

  function clickIn(item, selector) {
    var b = item && item.querySelector(selector);
    if (b && !b.disabled && !b.closest('[hidden]')) { b.click(); return true; }
    return false;
  }

  // -- selections: offsets into the document (code points, like Python) ---------------------

  function codePoints(s) { return Array.from(s).length; }

  function selectionIn(textEl, range) {
    var start = null, end = null;
    textEl.querySelectorAll('[data-s]').forEach(function (frag) {
      var t = frag.firstChild;
      if (!t || t.nodeType !== 3 || !range.intersectsNode(t)) { return; }
      var a = range.startContainer === t ? range.startOffset : 0;
      var b = range.endContainer === t ? range.endOffset : t.data.length;
      var base = parseInt(frag.dataset.s, 10);
      var ca = base + codePoints(t.data.slice(0, a));
      var cb = base + codePoints(t.data.slice(0, b));
      if (cb <= ca) { return; }
      if (start === null || ca < start) { start = ca; }
      if (end === null || cb > end) { end = cb; }
    });
    return start === null ? null : { start: start, end: end };
  }

  function describe(sel, text) {
    var shown = text.length > 60 ? text.slice(0, 57) + '…' : text;
    return 'Selected “' + shown + '” (' + sel.start + '–' + sel.end + ')';
  }

  document.addEventListener('selectionchange', function () {
    var s = window.getSelection();
    if (!s || !s.rangeCount) { return; }
    var range = s.getRangeAt(0);
    var node = range.commonAncestorContainer;
    var el = node.nodeType === 1 ? node : node.parentElement;
    var textEl = el && el.closest ? el.closest('.item .text') : null;
    if (!textEl) { return; }
    var item = textEl.closest('.item');
    var label = item.querySelector('.selection');
    var add = item.querySelector('.act-add');
    if (range.collapsed) {
      item._selection = null;
      if (add) { add.disabled = true; }
      if (label) {
        label.textContent = item.dataset.target === 'coding'
          ? 'Whole segment (select a span to narrow).' : 'Select text above to add it.';
      }
      return;
    }
    var sel = selectionIn(textEl, range);
    if (!sel) { return; }
    item._selection = sel;
    if (add) { add.disabled = false; }
    if (label) { label.textContent = describe(sel, s.toString().trim()); }
  });

  function addIdentifier(item) {
    var sel = item._selection;
    if (!sel) { toast('Select the missed identifier in the text first', true); return; }
    var type = item.querySelector('.add-type').value;
    send('POST', '/api/decide', {
      target: 'finding',
      action: 'add',
      ref: { document_id: item.dataset.doc, start: sel.start, end: sel.end },
      value: { type: type }
    }).then(function () {
      item.querySelector('.selection').textContent = 'Added as ' + type + '; replaced at the next re-run.';
      item._selection = null;
      item.querySelector('.act-add').disabled = true;
      toast('Missed identifier added (' + type + ')');
    }).catch(function (e) { toast(e.message, true); });
  }

  // -- the codebook picker -------------------------------------------------------------------

  var codeTemplate = document.getElementById('code-options');
  var allCodes = codeTemplate
    ? Array.prototype.map.call(codeTemplate.content.querySelectorAll('option'), function (o) {
      return { id: o.value, label: o.textContent, search: o.dataset.search, name: o.dataset.name };
    })
    : [];

  // codes whose own name has the query's words as whole words first, then names that
  // start with them, then any match in the path or description; codebook order within
  function rank(c, words) {
    var own = c.name.split(/[^\p{L}\p{N}]+/u);
    if (words.every(function (w) { return own.indexOf(w) >= 0; })) { return 0; }
    if (words.every(function (w) { return own.some(function (o) { return o.indexOf(w) === 0; }); })) { return 1; }
    return 2;
  }

  function fillCodes(select, query) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    select.textContent = '';
    allCodes
      .filter(function (c) { return words.every(function (w) { return c.search.indexOf(w) >= 0; }); })
      .map(function (c, i) { return { c: c, r: words.length ? rank(c, words) : 0, i: i }; })
      .sort(function (a, b) { return a.r - b.r || a.i - b.i; })
      .forEach(function (x) {
        var o = document.createElement('option');
        o.value = x.c.id;
        o.textContent = x.c.label;
        select.appendChild(o);
      });
  }

  document.querySelectorAll('.add-code').forEach(function (box) {
    var search = box.querySelector('.code-search');
    var select = box.querySelector('.code-pick');
    fillCodes(select, '');
    search.addEventListener('input', function () { fillCodes(select, search.value); });
  });

  function addCoding(item) {
    var select = item.querySelector('.code-pick');
    if (!select.value) { toast('Choose a code first', true); return; }
    var sel = item._selection;
    var value = sel ? { start: sel.start, end: sel.end } : {};
    var label = select.options[select.selectedIndex].textContent;
    send('POST', '/api/decide', {
      target: 'coding',
      action: 'add',
      ref: { segment_id: item.dataset.segment, code: select.value },
      value: value
    }).then(function () {
      item.querySelector('.selection').textContent = 'Added “' + label + '”' +
        (sel ? ' to ' + sel.start + '–' + sel.end : ' to the whole segment') + '.';
      toast('Coding added: ' + label);
    }).catch(function (e) { toast(e.message, true); });
  }

  document.addEventListener('click', function (e) {
    var t = e.target.closest ? e.target.closest('button') : null;
    if (!t) { return; }
    var item = t.closest('.item');
    if (t.classList.contains('act-add')) { addIdentifier(item); }
    if (t.classList.contains('act-addcode')) { addCoding(item); }
  });

  // -- the keyboard ------------------------------------------------------------------------

  document.addEventListener('keydown', function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) { return; }
    var tag = e.target.tagName;
    var typing = tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT';
    if (typing) {
      if (e.key === 'Escape') {
        var back = e.target.closest('.item');
        if (back) { e.preventDefault(); focusItem(back); }
      } else if (e.key === 'Enter' && e.target.classList.contains('code-search')) {
        e.preventDefault();
        addCoding(e.target.closest('.item'));
      }
      return;
    }
    var item = currentItem();
    var done = true;
    switch (e.key) {
      case 'j': case 'ArrowDown': move(1); break;
      case 'k': case 'ArrowUp': move(-1); break;
      case 'a': done = clickIn(item, '.act-accept'); break;
      case 'r': done = clickIn(item, '.act-reject'); break;
      case 'u': done = clickIn(item, 'form.undo .act-undo'); break;
      case 'i': done = clickIn(item, '.act-add'); break;
      case 'c': {
        var search = item && item.querySelector('.code-search');
        if (search) { search.focus(); } else { done = false; }
        break;
      }
      case 'm': {
        var details = item && item.querySelector('details.memo');
        if (details) { details.open = true; details.querySelector('textarea').focus(); } else { done = false; }
        break;
      }
      default: done = false;
    }
    if (done) { e.preventDefault(); }
  });

  items.forEach(function (item) {
    item.addEventListener('focus', function () {
      items.forEach(function (i) { i.classList.toggle('current', i === item); });
    });
  });

  // -- re-runs -----------------------------------------------------------------------------

  var statusEl = document.getElementById('rerun-status');
  var rerunButton = document.getElementById('rerun-button');
  var polling = false;

  function showRerun(s) {
    if (!statusEl) { return; }
    statusEl.dataset.state = s.state;
    if (s.state === 'running') {
      var last = s.stages.length ? s.stages[s.stages.length - 1] : null;
      statusEl.textContent = 'running: ' + s.done + (s.total ? ' of ' + s.total : '') +
        ' stages' + (last ? ' (' + last.stage + ' ' + last.action + ')' : '') + '…';
    } else if (s.state === 'finished') {
      var ran = s.stages.filter(function (x) { return x.action === 'run'; })
        .map(function (x) { return x.stage; });
      statusEl.textContent = 're-run finished in ' + s.seconds + ' s' +
        (ran.length ? ' (ran ' + ran.join(', ') + ')' : ' (nothing changed)');
    } else if (s.state === 'failed') {
      statusEl.textContent = 're-run failed';
    }
    if (rerunButton) { rerunButton.disabled = s.state === 'running'; }
  }

  function poll() {
    send('GET', '/api/rerun').then(function (s) {
      showRerun(s);
      if (s.state === 'running') {
        setTimeout(poll, 700);
      } else {
        polling = false;
        if (s.state === 'failed') { toast('Re-run failed: ' + (s.error || ''), true); }
        setTimeout(function () { window.location.reload(); }, 900);
      }
    }).catch(function () { setTimeout(poll, 1500); });
  }

  function startRerun() {
    send('POST', '/api/rerun', {}).then(function (s) {
      showRerun(s);
      if (!polling) { polling = true; setTimeout(poll, 500); }
    }).catch(function (e) { toast(e.message, true); });
  }

  if (statusEl && statusEl.dataset.state === 'running' && !polling) {
    polling = true;
    setTimeout(poll, 500);
  }

  // -- the overview: what a re-run would do -------------------------------------------------

  var planButton = document.getElementById('plan-button');
  if (planButton) {
    planButton.addEventListener('click', function () {
      planButton.disabled = true;
      send('GET', '/api/plan').then(function (j) {
        var table = document.getElementById('plan');
        var body = table.querySelector('tbody');
        body.textContent = '';
        j.stages.forEach(function (s) {
          var tr = document.createElement('tr');
          [s.stage, s.action === 'run' ? 'will run' : (s.action === 'skip' ? 'up to date' : s.action), s.reason]
            .forEach(function (v) {
              var td = document.createElement('td');
              td.textContent = v;
              tr.appendChild(td);
            });
          body.appendChild(tr);
        });
        table.hidden = false;
      }).catch(function (e) { toast(e.message, true); })
        .then(function () { planButton.disabled = false; });
    });
  }
}());
