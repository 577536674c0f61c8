extension CheckoutAssets {
    /// The checkout page's script (`/v1/checkout/assets/page.js`). It writes every
    /// merchant- or customer-supplied string with `textContent` or as an attribute value, never
    /// as HTML, and follows only URLs Kosh gave it (`next` actions, checked against its own
    /// origin) or the merchant's checked `callback_url`.
    static let pageJS = #"""
    (function () {
      'use strict';
      var $ = function (id) { return document.getElementById(id); };
      var boot = JSON.parse($('kosh-boot').textContent);
      var state = { options: null, parent: null, mode: boot.mode, prefs: null, polling: null, busy: false, current: null, misses: 0 };
      var KEY = 'kosh-checkout';

      function save() {
        try { sessionStorage.setItem(KEY, JSON.stringify({ options: state.options, parent: state.parent, mode: state.mode })); } catch (e) {}
      }
      function restore() {
        try { var s = JSON.parse(sessionStorage.getItem(KEY) || 'null'); if (s) { state.options = s.options; state.parent = s.parent; state.mode = s.mode; } } catch (e) {}
      }
      function tell(message) {
        if (state.mode === 'frame' && state.parent) window.parent.postMessage(message, state.parent);
      }
      function query(extra) {
        var q = 'key_id=' + encodeURIComponent(state.options.key);
        Object.keys(extra || {}).forEach(function (k) { if (extra[k]) q += '&' + k + '=' + encodeURIComponent(extra[k]); });
        return q;
      }
      function call(method, path, body) {
        return fetch(path, {
          method: method, credentials: 'omit', cache: 'no-store',
          headers: body ? { 'Content-Type': 'application/json' } : {},
          body: body ? JSON.stringify(body) : undefined
        }).then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (json) {
            if (!r.ok) { var e = new Error((json.error && json.error.description) || ('HTTP ' + r.status)); e.body = json; throw e; }
            return json;
          });
        });
      }
      function money(paise, currency) {
        try { return new Intl.NumberFormat('en-IN', { style: 'currency', currency: currency || 'INR' }).format(paise / 100); }
        catch (e) { return (currency || 'INR') + ' ' + (paise / 100).toFixed(2); }
      }
      function show(id, visible) { $(id).hidden = !visible; }
      function error(text) {
        $('error').textContent = text || '';
        show('error', !!text);
      }
      function status(text) { $('status').textContent = text || ''; }

      // The options: from checkout.js (in its iframe, also when coming back from a bank's or
      // the ACS's page: checkout.js answers `kosh:ready` again), or the hosted form (boot), or —
      // a hosted page coming back — this tab's session.
      function start() {
        var framed = window.parent !== window;
        if (framed) {
          window.addEventListener('message', function (event) {
            if (state.options || event.source !== window.parent || !event.data || event.data.type !== 'kosh:options') return;
            state.mode = 'frame';
            state.parent = event.origin;
            state.options = event.data.options || {};
            begin();
          });
          window.parent.postMessage({ type: 'kosh:ready' }, '*');
        } else if (boot.mode === 'hosted') {
          state.options = boot.options;
          save();
          begin();
        } else {
          restore();
          if (!state.options) { error('This checkout has expired. Please start again from the merchant\u2019s site.'); return; }
          state.mode = 'hosted';
          begin();
        }
      }

      // Back from a bank's or the ACS's page, the payment is asked about first: once paid its
      // order is (with auto-capture) already paid, and the page has nothing more to offer.
      function begin() {
        if (boot.mode === 'return' && boot.payment_id) { status('Confirming your payment\u2026'); follow(boot.payment_id); }
        else load();
      }

      function load(then) {
        var o = state.options;
        call('GET', '/v1/checkout/preferences?' + query({ order_id: o.order_id, customer_id: o.customer_id })).then(function (prefs) {
          state.prefs = prefs;
          render(prefs);
          if (then) then();
        }).catch(function (e) { error(e.message); show('close', true); });
      }

      function theme(color) {
        if (typeof color !== 'string' || !/^#([0-9a-f]{3}|[0-9a-f]{6})$/i.test(color)) return;
        var hex = color.length === 4 ? color.replace(/#(.)(.)(.)/, '#$1$1$2$2$3$3') : color;
        var channel = function (i) { var c = parseInt(hex.substr(i, 2), 16) / 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); };
        var luminance = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
        document.documentElement.style.setProperty('--accent', hex);
        // Black or white, whichever contrasts more (WCAG): they are equal at luminance 0.179.
        document.documentElement.style.setProperty('--on-accent', luminance > 0.179 ? '#111' : '#fff');
      }

      function render(prefs) {
        var o = state.options;
        theme(o.theme && o.theme.color);
        $('merchant').textContent = o.name || prefs.merchant.name;
        $('description').textContent = o.description || '';
        $('amount').textContent = money(prefs.order.amount, prefs.order.currency);
        if (typeof o.image === 'string' && /^(https?:\/\/|data:image\/(png|jpeg|gif|webp);)/i.test(o.image)) {
          $('logo').src = o.image;
          show('logo', true);
        }
        var prefill = o.prefill || {};
        if (typeof prefill.contact === 'string') $('contact').value = prefill.contact;
        if (typeof prefill.email === 'string') $('email').value = prefill.email;
        if (prefs.mode === 'test') show('test-mode', true);
        var m = prefs.methods;
        show('method-upi', m.upi.intent || m.upi.collect);
        show('upi-qr-start', m.upi.intent);
        show('upi-collect', m.upi.collect);
        if (prefs.mode === 'test') $('vpa').placeholder = 'success@razorpay';
        show('method-netbanking', m.netbanking.length > 0);
        show('method-wallet', m.wallet.length > 0);
        banks(m.netbanking, m.popular_banks);
        wallets(m.wallet);
        savedCards(prefs.saved_cards || []);
        show('checkout', true);
        show('close', true);
        var first = prefill.method && $('method-' + prefill.method) && !$('method-' + prefill.method).hidden ? prefill.method : null;
        if (first) choose(first);
      }

      function button(text, onclick, className) {
        var b = document.createElement('button');
        b.type = 'button';
        b.className = className || 'choice';
        b.textContent = text;
        b.addEventListener('click', onclick);
        return b;
      }

      function banks(list, popular) {
        var grid = $('popular-banks');
        var names = {};
        list.forEach(function (b) { names[b.code] = b.name; });
        popular.filter(function (c) { return names[c]; }).forEach(function (code) {
          grid.appendChild(button(names[code], function () { pay({ method: 'netbanking', bank: code }); }));
        });
        var ul = $('bank-list');
        list.forEach(function (b) {
          var li = document.createElement('li');
          var bt = button(b.name, function () { pay({ method: 'netbanking', bank: b.code }); });
          bt.setAttribute('data-search', (b.name + ' ' + b.code).toLowerCase());
          bt.setAttribute('data-code', b.code);
          li.appendChild(bt);
          ul.appendChild(li);
        });
        $('bank-search').addEventListener('input', function () {
          var q = this.value.trim().toLowerCase();
          var shown = 0;
          Array.prototype.forEach.call(ul.children, function (li) {
            var match = li.firstChild.getAttribute('data-search').indexOf(q) >= 0;
            li.hidden = !match;
            if (match) shown++;
          });
          $('bank-count').textContent = shown + (shown === 1 ? ' bank' : ' banks');
        });
      }

      function wallets(list) {
        var grid = $('wallet-list');
        list.forEach(function (w) {
          var b = button(w.name, function () { pay({ method: 'wallet', wallet: w.code }); });
          b.setAttribute('data-code', w.code);
          grid.appendChild(b);
        });
      }

      function savedCards(cards) {
        var box = $('saved-cards');
        cards.forEach(function (c) {
          var b = button(c.network + ' \u2022\u2022\u2022\u2022 ' + c.last4 + (c.issuer ? ' \u00b7 ' + c.issuer : ''), function () {
            var cvv = $('saved-cvv').value.replace(/\D/g, '');
            if (c.network !== 'RuPay' && (cvv.length < 3 || cvv.length > 4)) { error('Enter the CVV of your saved card.'); $('saved-cvv').focus(); return; }
            pay({ method: 'card', token: c.token, customer_id: c.customer_id, card: cvv ? { cvv: cvv } : undefined });
          });
          b.setAttribute('data-token', c.token);
          box.appendChild(b);
        });
        show('saved', cards.length > 0);
      }

      var panes = ['upi', 'card', 'netbanking', 'wallet'];
      function choose(method) {
        error('');
        panes.forEach(function (p) {
          show('pane-' + p, p === method);
          $('method-' + p).setAttribute('aria-pressed', p === method ? 'true' : 'false');
        });
        var heading = $('pane-' + method).querySelector('h2');
        if (heading) heading.focus();
      }
      panes.forEach(function (p) { $('method-' + p).addEventListener('click', function () { choose(p); }); });

      function customer() {
        var contact = $('contact').value.trim();
        var email = $('email').value.trim();
        if (!/^\+?[0-9][0-9 \-]{7,}$/.test(contact)) { error('Enter a valid phone number.'); $('contact').focus(); return null; }
        if (!/^[^\s@]+@[^\s@]+$/.test(email)) { error('Enter a valid email address.'); $('email').focus(); return null; }
        return { contact: contact, email: email };
      }

      function busy(on) {
        state.busy = on;
        Array.prototype.forEach.call(document.querySelectorAll('#checkout button'), function (b) { if (b.id !== 'close') b.disabled = on; });
        $('checkout').setAttribute('aria-busy', on ? 'true' : 'false');
      }

      // An open attempt (a QR code showing, a bank's page left) is cancelled before another
      // starts: the order takes one payment at a time. If it was paid meanwhile, that is the end.
      function pay(fields) {
        if (state.busy) return;
        var who = customer();
        if (!who) return;
        error('');
        if (state.current) {
          var open = state.current;
          busy(true);
          call('POST', '/v1/checkout/payments/' + encodeURIComponent(open) + '/cancel', { key_id: state.options.key }).then(function (r) {
            busy(false);
            if (r.status === 'paid') return succeeded(r);
            stopFollowing();
            show('upi-qr-box', false);
            show('upi-qr-start', state.prefs && state.prefs.methods.upi.intent);
            pay(fields);
          }).catch(function (e) { busy(false); error(e.message); });
          return;
        }
        var o = state.options;
        var body = { key_id: o.key, order_id: o.order_id, email: who.email, contact: who.contact };
        if (typeof o.description === 'string' && o.description) body.description = o.description.slice(0, 2048);
        if (o.notes && typeof o.notes === 'object' && !Array.isArray(o.notes)) body.notes = o.notes;
        Object.keys(fields).forEach(function (k) { if (fields[k] !== undefined) body[k] = fields[k]; });
        busy(true);
        status('Starting the payment\u2026');
        call('POST', '/v1/checkout/payments', body).then(function (created) {
          var id = created.razorpay_payment_id;
          var next = (created.next || []).filter(function (a) { return a.action === 'redirect'; })[0];
          if (next) {
            var url = new URL(next.url, location.href);
            if (url.origin !== location.origin) throw new Error('Unexpected redirect');
            status('Opening your bank\u2026');
            location.assign(url.href);
            return;
          }
          if (fields.method === 'upi' && !fields.vpa) {
            $('upi-qr').src = '/v1/checkout/payments/' + encodeURIComponent(id) + '/qr.png?' + query();
            $('upi-qr').setAttribute('data-payment', id);
            if (created.link) $('upi-intent').href = created.link;
            show('upi-qr-box', true);
            show('upi-qr-start', false);
            status('Scan the QR code with any UPI app, or open your UPI app. Waiting for your payment\u2026');
          } else {
            status('Approve the payment request in your UPI app. Waiting for your payment\u2026');
          }
          busy(false);
          follow(id);
        }).catch(function (e) {
          busy(false);
          status('');
          error((e.body && e.body.error ? e.body.error.description : e.message) || 'The payment could not be started.');
        });
      }

      $('upi-qr-start').addEventListener('click', function () { pay({ method: 'upi' }); });
      $('upi-collect').addEventListener('submit', function (e) {
        e.preventDefault();
        var vpa = $('vpa').value.trim();
        if (!/^[A-Za-z0-9.\-_]{2,256}@[A-Za-z]{2,64}$/.test(vpa)) { error('Enter a valid UPI ID, such as name@bank.'); $('vpa').focus(); return; }
        pay({ method: 'upi', vpa: vpa });
      });

      // Cards: the network (and issuer) from Kosh's BIN table as the number is typed.
      var lastIIN = '';
      $('card-number').addEventListener('input', function () {
        var digits = this.value.replace(/\D/g, '').slice(0, 19);
        var grouped = digits.replace(/(\d{4})(?=\d)/g, '$1 ');
        if (grouped !== this.value) this.value = grouped;
        var iin = digits.slice(0, 6);
        if (iin.length < 6) { lastIIN = ''; $('card-network').textContent = ''; return; }
        if (iin === lastIIN) return;
        lastIIN = iin;
        call('GET', '/v1/checkout/iins/' + iin + '?' + query()).then(function (r) {
          if (lastIIN !== iin) return;
          $('card-network').textContent = r.network + (r.type ? ' ' + r.type : '') + (r.issuer_name ? ' \u00b7 ' + r.issuer_name : '');
        }).catch(function () { if (lastIIN === iin) $('card-network').textContent = ''; });
      });
      $('card-expiry').addEventListener('input', function () {
        var d = this.value.replace(/\D/g, '').slice(0, 4);
        var v = d.length > 2 ? d.slice(0, 2) + '/' + d.slice(2) : d;
        if (v !== this.value) this.value = v;
      });
      $('card-form').addEventListener('submit', function (e) {
        e.preventDefault();
        var number = $('card-number').value.replace(/\D/g, '');
        var expiry = $('card-expiry').value.split('/');
        var cvv = $('card-cvv').value.replace(/\D/g, '');
        if (number.length < 12) { error('Enter your card number.'); $('card-number').focus(); return; }
        if (expiry.length !== 2 || !/^\d\d$/.test(expiry[0]) || !/^\d\d$/.test(expiry[1])) { error('Enter the expiry as MM/YY.'); $('card-expiry').focus(); return; }
        if (cvv.length < 3) { error('Enter the CVV.'); $('card-cvv').focus(); return; }
        var card = { number: number, expiry_month: expiry[0], expiry_year: expiry[1], cvv: cvv };
        var name = $('card-name').value.trim();
        if (name) card.name = name;
        pay({ method: 'card', card: card });
      });

      // Follows one payment until it is over. Kosh refusing the question (4xx) ends it; a
      // network error or 5xx is asked again, less often, for a few minutes.
      function follow(id) {
        clearTimeout(state.polling);
        state.current = id;
        call('GET', '/v1/checkout/payments/' + encodeURIComponent(id) + '?' + query()).then(function (r) {
          if (state.current !== id) return;
          state.misses = 0;
          if (r.status === 'paid') return succeeded(r);
          if (r.status === 'failed') { stopFollowing(); return state.prefs ? failed(r.error) : load(function () { failed(r.error); }); }
          state.polling = setTimeout(function () { follow(id); }, 1500);
        }).catch(function (e) {
          if (state.current !== id) return;
          if (e.body && e.body.error) { stopFollowing(); status(''); error(e.message); return; }
          if (++state.misses > 60) { stopFollowing(); status(''); error('Kosh cannot be reached. Check your connection, then reload this page.'); return; }
          state.polling = setTimeout(function () { follow(id); }, 3000);
        });
      }
      function stopFollowing() { clearTimeout(state.polling); state.current = null; }

      function succeeded(r) {
        stopFollowing();
        if (r.razorpay_order_id !== state.options.order_id) { error('This payment is not for this order.'); return; }
        var fields = { razorpay_payment_id: r.razorpay_payment_id, razorpay_order_id: r.razorpay_order_id, razorpay_signature: r.razorpay_signature };
        show('checkout', false);
        show('done', true);
        $('done-id').textContent = r.razorpay_payment_id;
        $('done').focus();
        try { sessionStorage.removeItem(KEY); } catch (e) {}
        if (state.mode === 'frame') { tell({ type: 'kosh:success', response: fields }); return; }
        var o = state.options;
        if (o.callback_url) {
          var form = $('return-form');
          form.action = o.callback_url;
          Object.keys(fields).forEach(function (k) {
            var input = document.createElement('input');
            input.type = 'hidden'; input.name = k; input.value = fields[k];
            form.appendChild(input);
          });
          form.submit();
        }
      }

      // A payment that failed: reported to the merchant's page (`payment.failed`) and shown, with
      // every method offered again.
      function failed(e) {
        e = e || {};
        show('upi-qr-box', false);
        show('upi-qr-start', state.prefs && state.prefs.methods.upi.intent);
        status('');
        error((e.description || 'The payment failed.') + ' You can try again, with this or another method.');
        tell({ type: 'kosh:failed', error: e });
        show('checkout', true);
        busy(false);
      }

      $('close').addEventListener('click', dismiss);
      document.addEventListener('keydown', function (e) { if (e.key === 'Escape') dismiss(); });
      function dismiss() {
        stopFollowing();
        if (state.mode === 'frame') { tell({ type: 'kosh:dismiss' }); return; }
        if (state.options && state.options.cancel_url) location.assign(state.options.cancel_url);
        else history.back();
      }

      start();
    })();
    """#
}
