extension CheckoutAssets {
    /// `GET /v1/checkout.js`: Razorpay's Standard Checkout API — `new Razorpay(options)`,
    /// `.open()`, `.close()`, `.on('payment.failed', fn)` — over an iframe of Kosh's page.
    ///
    /// The page and this script speak by `postMessage`, each checking the other's origin and
    /// window: the page asks for the options (`kosh:ready`), this script sends them
    /// (functions left out), and the page reports `kosh:success` (the signed triple),
    /// `kosh:failed` (Razorpay's `error` object; the modal stays open for another try) or
    /// `kosh:dismiss`. With `callback_url` and `redirect: true` (or no `handler`), the
    /// merchant's own page posts the triple to its `callback_url`, as Razorpay's does.
    static let checkoutJS = #"""
    /* Kosh checkout.js: compatible with Razorpay's Standard Checkout. */
    (function () {
      'use strict';
      if (window.Razorpay && window.Razorpay.kosh) return;
      // Kosh's public address (KOSH_PUBLIC_URL), where its pages, the banks' and the ACS's
      // returns all are — whatever name the merchant's page loaded this script by.
      var base = {{BASE}};
      var passed = ['key', 'order_id', 'amount', 'currency', 'name', 'description', 'image', 'prefill', 'notes', 'theme',
                    'customer_id', 'callback_url', 'redirect', 'readonly'];

      function Razorpay(options) {
        if (!(this instanceof Razorpay)) return new Razorpay(options);
        if (!options || typeof options.key !== 'string' || !options.key) throw new Error('Razorpay: the key option is required');
        if (typeof options.order_id !== 'string' || !options.order_id) throw new Error('Razorpay: the order_id option is required');
        this.options = options;
        this._events = {};
      }
      Razorpay.kosh = true;

      Razorpay.prototype.on = function (event, fn) {
        if (typeof fn === 'function') (this._events[event] = this._events[event] || []).push(fn);
        return this;
      };

      Razorpay.prototype._emit = function (event, payload) {
        (this._events[event] || []).forEach(function (fn) {
          try { fn(payload); } catch (e) { setTimeout(function () { throw e; }); }
        });
      };

      Razorpay.prototype._options = function () {
        var picked = {};
        var o = this.options;
        passed.forEach(function (key) { if (o[key] !== undefined) picked[key] = o[key]; });
        return JSON.parse(JSON.stringify(picked));
      };

      Razorpay.prototype.open = function () {
        if (this._overlay) return this;
        var self = this;
        var small = window.innerWidth < 640;
        var overlay = document.createElement('div');
        overlay.setAttribute('role', 'dialog');
        overlay.setAttribute('aria-modal', 'true');
        overlay.setAttribute('aria-label', 'Checkout');
        overlay.setAttribute('style', 'position:fixed;top:0;right:0;bottom:0;left:0;z-index:2147483647;background:rgba(0,0,0,.6);' +
          'display:flex;align-items:center;justify-content:center');
        var frame = document.createElement('iframe');
        frame.title = 'Checkout';
        frame.name = 'kosh-checkout';
        frame.setAttribute('allow', 'payment; clipboard-write');
        frame.setAttribute('style', 'border:0;background:#fff;display:block;' +
          (small ? 'width:100%;height:100%' : 'width:420px;height:min(680px,96vh);border-radius:10px;box-shadow:0 8px 30px rgba(0,0,0,.35)'));
        frame.src = base + '/v1/checkout/page';
        overlay.appendChild(frame);
        this._focus = document.activeElement;
        this._overflow = document.body.style.overflow;
        document.body.style.overflow = 'hidden';
        document.body.appendChild(overlay);
        this._overlay = overlay;
        this._frame = frame;
        this._listener = function (event) {
          if (event.origin !== base || event.source !== frame.contentWindow) return;
          var data = event.data || {};
          if (data.type === 'kosh:ready') {
            frame.contentWindow.postMessage({ type: 'kosh:options', options: self._options() }, base);
          } else if (data.type === 'kosh:success') {
            self._remove();
            self._succeeded(data.response || {});
          } else if (data.type === 'kosh:failed') {
            self._failed(data.error || {});
          } else if (data.type === 'kosh:dismiss') {
            self.close();
          }
        };
        window.addEventListener('message', this._listener);
        frame.focus();
        return this;
      };

      Razorpay.prototype._remove = function () {
        if (!this._overlay) return false;
        window.removeEventListener('message', this._listener);
        this._overlay.parentNode && this._overlay.parentNode.removeChild(this._overlay);
        document.body.style.overflow = this._overflow || '';
        this._overlay = this._frame = this._listener = null;
        if (this._focus && typeof this._focus.focus === 'function') this._focus.focus();
        return true;
      };

      /** Closes the modal; `modal.ondismiss` is called as when the customer closes it. */
      Razorpay.prototype.close = function () {
        if (this._remove()) {
          var modal = this.options.modal || {};
          if (typeof modal.ondismiss === 'function') modal.ondismiss();
        }
      };

      Razorpay.prototype._redirects = function () {
        var o = this.options;
        return !!o.callback_url && (o.redirect === true || typeof o.handler !== 'function');
      };

      Razorpay.prototype._post = function (fields) {
        var form = document.createElement('form');
        form.method = 'POST';
        form.action = this.options.callback_url;
        Object.keys(fields).forEach(function (name) {
          var input = document.createElement('input');
          input.type = 'hidden';
          input.name = name;
          input.value = fields[name] == null ? '' : String(fields[name]);
          form.appendChild(input);
        });
        document.body.appendChild(form);
        form.submit();
      };

      Razorpay.prototype._succeeded = function (response) {
        var fields = {
          razorpay_payment_id: response.razorpay_payment_id,
          razorpay_order_id: response.razorpay_order_id,
          razorpay_signature: response.razorpay_signature
        };
        if (this._redirects()) this._post(fields);
        else if (typeof this.options.handler === 'function') this.options.handler(fields);
      };

      /** `payment.failed` with Razorpay's `error`; redirecting to callback_url, its `error[…]` fields are posted there, as Razorpay does. */
      Razorpay.prototype._failed = function (error) {
        this._emit('payment.failed', { error: error });
        if (this.options.redirect === true && this.options.callback_url) {
          this._remove();
          this._post({
            'error[code]': error.code, 'error[description]': error.description, 'error[source]': error.source,
            'error[step]': error.step, 'error[reason]': error.reason, 'error[metadata]': JSON.stringify(error.metadata || {})
          });
        }
      };

      window.Razorpay = Razorpay;
    })();
    """#
}
