/*!
 * paygate.js — the paygate browser SDK (API.md §11).
 *
 *   <script src="https://your-paygate/sdk/paygate.js"></script>
 *   const paygate = new Paygate({ key: "pk_test_…" });
 *   paygate.checkout({
 *     orderId: "ord_…",                          // created by your server with its secret key
 *     onSuccess: ({ orderId, paymentId, status }) => …,
 *     onFailure: ({ orderId, paymentId, error }) => …,  // the customer may try again in the modal
 *     onClose:   ({ orderId }) => …,
 *   });
 *
 * The hosted checkout opens in a modal iframe served by paygate, so card numbers never touch the
 * merchant's page. Helpers: Paygate.validateCard(number) (Luhn), Paygate.cardBrand(number),
 * Paygate.validateVpa(vpa). No dependencies; works in every current browser. The same file is served at
 * /checkout.js, where it also answers as `PaymentGateway` (see below).
 */
(function (global) {
  "use strict";

  var script = document.currentScript;
  // paygate's own origin: where this file was loaded from (the iframe and its messages come from there)
  var DEFAULT_BASE = script && script.src ? new URL(script.src, global.location.href).origin : "";
  var VPA = /^[a-zA-Z0-9][a-zA-Z0-9._-]{1,255}@[a-zA-Z][a-zA-Z0-9]{1,63}$/;

  function digits(value) {
    return String(value == null ? "" : value).replace(/[\s-]/g, "");
  }

  /** Luhn check of a 12–19 digit card number (spaces and dashes allowed). */
  function validateCard(number) {
    var n = digits(number);
    if (!/^[0-9]{12,19}$/.test(n)) return false;
    var sum = 0;
    for (var i = 0; i < n.length; i++) {
      var d = n.charCodeAt(n.length - 1 - i) - 48;
      if (i % 2 === 1) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
    }
    return sum % 10 === 0;
  }

  /** "visa" | "mastercard" | "amex" | "discover" | "rupay" | "jcb" | "unknown" — the server's rules. */
  function cardBrand(number) {
    var n = digits(number);
    if (!/^[0-9]+$/.test(n)) return "unknown";
    var two = n.slice(0, 2);
    var four = n.length >= 4 ? parseInt(n.slice(0, 4), 10) : -1;
    if (n.charAt(0) === "4") return "visa";
    if (["51", "52", "53", "54", "55"].indexOf(two) >= 0 || (four >= 2221 && four <= 2720)) return "mastercard";
    if (two === "34" || two === "37") return "amex";
    if (n.indexOf("6011") === 0 || two === "65") return "discover";
    if (two === "60" || two === "81" || two === "82" || n.indexOf("508") === 0) return "rupay";
    if (four >= 3528 && four <= 3589) return "jcb";
    return "unknown";
  }

  /** A UPI virtual payment address: handle@bank. */
  function validateVpa(vpa) {
    return typeof vpa === "string" && VPA.test(vpa.trim());
  }

  function call(fn, arg) {
    if (typeof fn !== "function") return;
    try {
      fn(arg);
    } catch (err) {
      // a merchant callback's error must not break the modal; surface it where developers look
      setTimeout(function () { throw err; });
    }
  }

  function style(el, props) {
    for (var k in props) if (Object.prototype.hasOwnProperty.call(props, k)) el.style[k] = props[k];
    return el;
  }

  function Paygate(options) {
    if (!(this instanceof Paygate)) throw new TypeError("Paygate: use `new Paygate({key: 'pk_test_…'})`");
    options = options || {};
    var key = options.key;
    if (typeof key !== "string" || key.indexOf("pk_") !== 0) {
      if (typeof key === "string" && key.indexOf("sk_") === 0) {
        throw new Error("Paygate: never put a secret key (sk_…) in a web page; use your publishable key (pk_…)");
      }
      throw new Error("Paygate: a publishable key (pk_test_…) is required");
    }
    this.key = key;
    this.baseUrl = String(options.baseUrl || DEFAULT_BASE).replace(/\/+$/, "");
    this._current = null;
  }

  /** Open the hosted checkout of an order in a modal; returns {close()}. */
  Paygate.prototype.checkout = function (options) {
    options = options || {};
    var orderId = options.orderId;
    if (typeof orderId !== "string" || !/^ord_[A-Za-z0-9]+$/.test(orderId)) {
      throw new Error("Paygate: checkout needs {orderId: 'ord_…'}");
    }
    if (this._current) this._current.close();
    var self = this;
    var base = this.baseUrl;
    var paygateOrigin = new URL(base || global.location.href, global.location.href).origin;
    var doc = global.document;

    var overlay = style(doc.createElement("div"), {
      position: "fixed", inset: "0", zIndex: "2147483000", display: "flex", alignItems: "center",
      justifyContent: "center", background: "rgba(15, 23, 42, 0.55)", padding: "12px",
    });
    overlay.setAttribute("data-test-id", "payment-modal");
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-modal", "true");
    overlay.setAttribute("aria-label", "Checkout");

    var box = style(doc.createElement("div"), {
      position: "relative", width: "440px", maxWidth: "100%", height: "640px", maxHeight: "100%",
      background: "#fff", borderRadius: "14px", overflow: "hidden", boxShadow: "0 24px 64px rgba(0,0,0,0.35)",
    });

    var closeButton = style(doc.createElement("button"), {
      position: "absolute", top: "10px", right: "10px", width: "32px", height: "32px", border: "0",
      borderRadius: "16px", background: "rgba(255, 255, 255, 0.22)", color: "#fff", font: "22px/32px sans-serif",
      cursor: "pointer", zIndex: "1", padding: "0",
    });
    closeButton.type = "button";
    closeButton.textContent = "×";
    closeButton.setAttribute("aria-label", "Close checkout");
    closeButton.setAttribute("data-test-id", "close-modal-button");

    var params = "key=" + encodeURIComponent(this.key) + "&embed=1";
    // This page's origin: the checkout lets only it (and paygate) frame the page (CSP frame-ancestors)
    // and posts its messages to it alone. A page without one (file://, sandboxed) cannot embed it.
    var origin = global.location.origin;
    if (origin && origin !== "null") params += "&origin=" + encodeURIComponent(origin);
    var iframe = style(doc.createElement("iframe"), { width: "100%", height: "100%", border: "0", display: "block" });
    iframe.setAttribute("data-test-id", "payment-iframe");
    iframe.setAttribute("title", "paygate checkout");
    iframe.src = base + "/checkout/" + encodeURIComponent(orderId) + "?" + params;

    var previousOverflow = doc.documentElement.style.overflow;
    var closed = false;

    function onMessage(event) {
      if (event.source !== iframe.contentWindow || event.origin !== paygateOrigin) return;
      var data = event.data;
      if (!data || data.source !== "paygate") return;
      if (data.type === "success") {
        call(options.onSuccess, { orderId: orderId, paymentId: data.paymentId, status: data.status });
      } else if (data.type === "failure") {
        call(options.onFailure, { orderId: orderId, paymentId: data.paymentId || null, error: data.error || {} });
      } else if (data.type === "close") {
        handle.close();
      }
    }

    function onKey(event) {
      if (event.key === "Escape") handle.close();
    }

    var handle = {
      close: function () {
        if (closed) return;
        closed = true;
        global.removeEventListener("message", onMessage);
        doc.removeEventListener("keydown", onKey);
        if (overlay.parentNode) overlay.parentNode.removeChild(overlay);
        doc.documentElement.style.overflow = previousOverflow;
        if (self._current === handle) self._current = null;
        call(options.onClose, { orderId: orderId });
      },
    };

    closeButton.addEventListener("click", function () { handle.close(); });
    global.addEventListener("message", onMessage);
    doc.addEventListener("keydown", onKey);
    box.appendChild(closeButton);
    box.appendChild(iframe);
    overlay.appendChild(box);
    doc.body.appendChild(overlay);
    doc.documentElement.style.overflow = "hidden";
    closeButton.focus();
    this._current = handle;
    return handle;
  };

  /**
   * The drop-in of seed 001's and seed 004's gateways (API.md §11 v2), for merchants moving to paygate:
   *   new PaymentGateway({ key: "pk_test_…", orderId: "ord_…", onSuccess, onFailure, onClose }).open()
   * opens the same modal as `new Paygate({key}).checkout({...})`. onSuccess receives {paymentId} (with
   * orderId and status beside it); a failure leaves the modal open for another try.
   */
  function PaymentGateway(options) {
    if (!(this instanceof PaymentGateway)) {
      throw new TypeError("PaymentGateway: use `new PaymentGateway({key, orderId, ...})`");
    }
    options = options || {};
    this._paygate = new Paygate({ key: options.key, baseUrl: options.baseUrl });
    this._options = options;
    this._handle = null;
  }

  PaymentGateway.prototype.open = function () {
    var o = this._options;
    var self = this;
    this._handle = this._paygate.checkout({
      orderId: o.orderId,
      onSuccess: function (r) { call(o.onSuccess, { paymentId: r.paymentId, orderId: r.orderId, status: r.status }); },
      onFailure: function (r) { call(o.onFailure, r); },
      onClose: function (r) { self._handle = null; call(o.onClose, r); },
    });
    return this;
  };

  PaymentGateway.prototype.close = function () {
    if (this._handle) this._handle.close();
  };

  Paygate.validateCard = validateCard;
  Paygate.cardBrand = cardBrand;
  Paygate.validateVpa = validateVpa;
  Paygate.version = "1";

  global.Paygate = Paygate;
  global.PaymentGateway = PaymentGateway;
})(window);
