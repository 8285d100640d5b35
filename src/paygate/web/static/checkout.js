/*
 * The hosted checkout page's behaviour. Validation (Luhn, brand, VPA) comes from the SDK's helpers, so the
 * page and merchants' own forms agree. Each press of "Pay" is one attempt with its own Idempotency-Key;
 * network errors and 5xx are retried with that same key, so an attempt can never charge twice.
 * The card number and CVV are sent once, to this origin, and never stored or logged in the page.
 * After a failure, "Try again" is offered while the order still accepts failed payments (API.md §19:
 * PAYGATE_ORDER_MAX_FAILED_PAYMENTS); once it accepts no more, the page says so instead.
 *
 * A card that needs its holder's authentication (API.md §15) is answered 201 `requires_action`: the page
 * sends the browser (the top-level page, or the SDK modal's iframe) to the bank's challenge page, whose
 * answer brings it back here with `?payment_id=`; the server then renders that payment's outcome. Why a
 * redirect rather than a frame of our own: docs/authentication.md, "Checkout and SDK".
 * An order with a `return_url` sends the customer back to the shop once the outcome is final (paid, or
 * this payment failed): a `return-link` followed after 3 seconds, unless they choose to try again; in
 * the SDK's modal the modal closes instead (the shop's onSuccess / onFailure have been told).
 */
(function () {
  "use strict";

  var root = document.querySelector('[data-test-id="checkout-container"]');
  if (!root) return;
  var orderId = root.getAttribute("data-order-id");
  // Messages go to the embedding page the SDK announced (?origin=), and without one only to a page of
  // paygate's own origin: never "*", since they name the payment (the CSP's frame-ancestors agrees).
  var parentOrigin = root.getAttribute("data-parent-origin") || window.location.origin;
  var base = "/checkout/" + encodeURIComponent(orderId);
  var embedded = root.getAttribute("data-embedded") === "1";
  var embedOrigin = root.getAttribute("data-parent-origin") || ""; // the SDK's page, validated by the server
  var shopReturnUrl = root.getAttribute("data-return-url") || "";
  var RETURN_DELAY_S = 3;

  function byId(id) { return document.getElementById(id); }
  function byTest(id) { return root.querySelector('[data-test-id="' + id + '"]'); }

  var views = {
    form: byId("pay-form"),
    processing: byTest("processing-state"),
    action: byTest("action-state"),
    success: byTest("success-state"),
    failure: byTest("failure-state"),
  };
  var form = byId("checkout-form");
  var payButton = byId("pay-button");
  var cardInput = byId("card-number");
  var expiryInput = byId("card-expiry");
  var cvvInput = byId("card-cvv");
  var nameInput = byId("card-name");
  var vpaInput = byId("upi-vpa");
  var brandBadge = byId("card-brand");
  var formError = byId("form-error");
  var method = "card";
  var busy = false;
  var savedCard = null; // the pm_ id of the saved card chosen (the order's customer's, §16), or null: a new card
  var saveBox = byId("save-card");

  var BRANDS = { visa: "Visa", mastercard: "Mastercard", amex: "American Express", discover: "Discover",
                 rupay: "RuPay", jcb: "JCB" };

  function show(name) {
    Object.keys(views).forEach(function (k) { views[k].hidden = k !== name; });
  }

  function tell(type, data) {
    if (window.parent === window) return;
    data.source = "paygate";
    data.type = type;
    data.orderId = orderId;
    try {
      window.parent.postMessage(data, parentOrigin);
    } catch (e) { /* a parent on another origin than announced: it gets nothing */ }
  }

  // --- fields -----------------------------------------------------------------------------------------

  function setError(input, id, message) {
    var el = byId(id);
    el.textContent = message;
    el.hidden = false;
    input.setAttribute("aria-invalid", "true");
  }

  function clearError(input, id) {
    byId(id).hidden = true;
    byId(id).textContent = "";
    input.removeAttribute("aria-invalid");
  }

  function clearErrors() {
    clearError(cardInput, "card-number-error");
    clearError(expiryInput, "card-expiry-error");
    clearError(cvvInput, "card-cvv-error");
    clearError(vpaInput, "upi-vpa-error");
    formError.hidden = true;
  }

  function onlyDigits(value) { return value.replace(/\D/g, ""); }

  function groupCard(d) {
    if (Paygate.cardBrand(d) === "amex") {
      return [d.slice(0, 4), d.slice(4, 10), d.slice(10, 15)].filter(Boolean).join(" ");
    }
    return d.replace(/(\d{4})(?=\d)/g, "$1 ");
  }

  cardInput.addEventListener("input", function () {
    var d = onlyDigits(cardInput.value).slice(0, 19);
    cardInput.value = groupCard(d);
    var brand = Paygate.cardBrand(d);
    brandBadge.textContent = d.length >= 1 && BRANDS[brand] ? BRANDS[brand] : "";
    brandBadge.setAttribute("data-brand", d.length >= 1 ? brand : "");
    clearError(cardInput, "card-number-error");
  });

  expiryInput.addEventListener("input", function (event) {
    var d = onlyDigits(expiryInput.value).slice(0, 4);
    if (d.length === 1 && d > "1") d = "0" + d; // "4" → "04"
    var deleting = event.inputType && event.inputType.indexOf("delete") === 0;
    expiryInput.value = d.length > 2 || (d.length === 2 && !deleting) ? d.slice(0, 2) + "/" + d.slice(2) : d;
    clearError(expiryInput, "card-expiry-error");
  });

  cvvInput.addEventListener("input", function () {
    cvvInput.value = onlyDigits(cvvInput.value).slice(0, 4);
    clearError(cvvInput, "card-cvv-error");
  });

  vpaInput.addEventListener("input", function () { clearError(vpaInput, "upi-vpa-error"); });

  function selectMethod(next) {
    method = next;
    root.querySelectorAll('[role="tab"]').forEach(function (tab) {
      var on = tab.getAttribute("data-method") === next;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
    });
    byId("panel-card").hidden = next !== "card";
    byId("panel-upi").hidden = next !== "upi";
    clearErrors();
  }

  root.querySelectorAll('[role="tab"]').forEach(function (tab) {
    tab.addEventListener("click", function () { selectMethod(tab.getAttribute("data-method")); });
    tab.addEventListener("keydown", function (event) {
      if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
        var next = method === "card" ? "upi" : "card";
        selectMethod(next);
        byId("tab-" + next).focus();
      }
    });
  });

  function readCard() {
    var ok = true;
    var number = onlyDigits(cardInput.value);
    if (!Paygate.validateCard(number)) {
      setError(cardInput, "card-number-error", number ? "Your card number is invalid." : "Enter your card number.");
      ok = false;
    }
    var m = /^\s*(\d{1,2})\s*\/\s*(\d{2}|\d{4})\s*$/.exec(expiryInput.value);
    var month = m ? parseInt(m[1], 10) : 0;
    if (!m || month < 1 || month > 12) {
      setError(expiryInput, "card-expiry-error", "Enter the expiry date as MM/YY.");
      ok = false;
    }
    var cvc = cvvInput.value;
    if (!/^\d{3,4}$/.test(cvc)) {
      setError(cvvInput, "card-cvv-error", "Enter the 3 or 4 digit security code.");
      ok = false;
    }
    if (!ok) return null;
    var year = parseInt(m[2], 10);
    if (year < 100) year += 2000;
    var card = { number: number, exp_month: month, exp_year: year, cvc: cvc };
    var name = nameInput.value.replace(/\s+/g, " ").trim();
    if (name) card.name = name.slice(0, 100);
    return { type: "card", card: card };
  }

  // --- saved cards (an order for a customer) -----------------------------------------------------------

  function chooseSaved(button) {
    savedCard = button && button.getAttribute("data-pm-id") ? button.getAttribute("data-pm-id") : null;
    root.querySelectorAll(".saved-card").forEach(function (b) {
      b.setAttribute("aria-pressed", b === button ? "true" : "false");
    });
    byId("new-card-fields").hidden = savedCard !== null;
    clearErrors();
  }

  root.querySelectorAll(".saved-card").forEach(function (b) {
    b.addEventListener("click", function () { chooseSaved(b); });
  });

  function readUpi() {
    var vpa = vpaInput.value.trim();
    if (!Paygate.validateVpa(vpa)) {
      setError(vpaInput, "upi-vpa-error", vpa ? "Enter a valid UPI ID, like name@bank." : "Enter your UPI ID.");
      return null;
    }
    return { type: "upi", upi: { vpa: vpa } };
  }

  // --- talking to paygate -------------------------------------------------------------------------------

  function newKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes); // works outside secure contexts too (unlike randomUUID)
    return "checkout_" + Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  function wait(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  /** fetch + JSON; retries (same key) on network errors, 5xx and "key in use" — never on an answer. */
  function send(path, options, tries) {
    tries = tries || 0;
    return fetch(path, options).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (body) {
        var inUse = res.status === 409 && body.error && body.error.code === "idempotency_key_in_use";
        if ((res.status >= 500 || inUse) && tries < 4) {
          var after = parseInt(res.headers.get("Retry-After") || "0", 10) * 1000;
          return wait(Math.max(after, 400 * Math.pow(2, tries))).then(function () { return send(path, options, tries + 1); });
        }
        return { status: res.status, body: body };
      });
    }, function (err) {
      if (tries < 4) return wait(400 * Math.pow(2, tries)).then(function () { return send(path, options, tries + 1); });
      throw err;
    });
  }

  // --- back to the shop (the order's return_url, §15) --------------------------------------------------

  var returnTimer = null;

  /** return_url with payment_id and status set in its query; the rest kept as written, never re-encoded
   *  (the rule of domain/authentication.py's with_query, which builds the standalone success page's link). */
  function backToShop(paymentId, status) {
    var hashAt = shopReturnUrl.indexOf("#");
    var fragment = hashAt >= 0 ? shopReturnUrl.slice(hashAt) : "";
    var url = hashAt >= 0 ? shopReturnUrl.slice(0, hashAt) : shopReturnUrl;
    var queryAt = url.indexOf("?");
    var path = queryAt >= 0 ? url.slice(0, queryAt) : url;
    var kept = (queryAt >= 0 ? url.slice(queryAt + 1) : "").split("&").filter(function (part) {
      var name = part.split("=")[0];
      return part && name !== "payment_id" && name !== "status";
    });
    kept.push("payment_id=" + encodeURIComponent(paymentId), "status=" + encodeURIComponent(status));
    return path + "?" + kept.join("&") + fragment;
  }

  function cancelReturn() {
    if (returnTimer !== null) clearInterval(returnTimer);
    returnTimer = null;
    byId("return-box").hidden = true;
  }

  /** The outcome is final: show the way back and take it after RETURN_DELAY_S (in the modal: close it). */
  function backToShopSoon(paymentId, status) {
    if (!shopReturnUrl || !paymentId) return;
    cancelReturn();
    var link = byId("return-link");
    var href = backToShop(paymentId, status);
    if (link) link.href = href;
    var left = RETURN_DELAY_S;
    var counters = root.querySelectorAll("#return-box .countdown");
    function paint() {
      counters.forEach(function (c) { c.textContent = left + (left === 1 ? " second" : " seconds"); });
    }
    paint();
    byId("return-box").hidden = false;
    returnTimer = setInterval(function () {
      left -= 1;
      paint();
      if (left > 0) return;
      clearInterval(returnTimer);
      returnTimer = null;
      if (embedded) tell("close", {});
      else window.location.assign(href);
    }, 1000);
  }

  function succeed(paymentId, status) {
    byTest("payment-id").textContent = paymentId;
    show("success");
    busy = false;
    if (window.parent === window && window.history && window.history.replaceState) {
      // a reload (or a bookmark) now lands on the standalone success page, not on a form to pay again
      window.history.replaceState(null, "", base + "/success?payment_id=" + encodeURIComponent(paymentId));
    }
    tell("success", { paymentId: paymentId, status: status });
    backToShopSoon(paymentId, status);
  }

  /** Offer "Try again" while the order accepts more failed payments; otherwise say that it does not. */
  function showRetry(left) {
    var exhausted = left === 0;
    byId("retry-box").hidden = exhausted;
    byId("exhausted-box").hidden = !exhausted;
    byId("attempts-left").textContent = left > 0 && left <= 3 ? " (" + left + (left === 1 ? " attempt" : " attempts") + " left)" : "";
  }

  function attemptsLeft() {
    return fetch(base + "/status", { cache: "no-store" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (s) {
      return s && s.order && typeof s.order.attempts_left === "number" ? s.order.attempts_left : null;
    }, function () { return null; }); // unknown: offer the retry, the server still enforces the limit
  }

  /** `status`: the payment's own (the shop's return link carries it), "failed" unless told otherwise. */
  function fail(paymentId, message, code, status) {
    var exhausted = code === "too_many_attempts";
    return (exhausted ? Promise.resolve(0) : attemptsLeft()).then(function (left) {
      byId("failure-message").textContent = message;
      showRetry(left);
      show("failure");
      busy = false;
      tell("failure", { paymentId: paymentId || null, error: { code: code || "payment_failed", message: message } });
      backToShopSoon(paymentId, status || "failed"); // only a payment that failed: not a network error or a refusal
    });
  }

  function backToForm() {
    cancelReturn();
    followToken += 1;
    show("form");
    busy = false;
    payButton.disabled = false;
  }

  function processing(title, text) {
    byId("processing-title").textContent = title;
    byId("processing-text").textContent = text;
    show("processing");
  }

  var SUCCEEDED = ["captured", "authorized", "partially_refunded", "refunded"];

  /** The bank wants the customer to authenticate (§15): go to its challenge page, in this same window (the
   *  SDK modal's iframe, when embedded). It sends the browser back here, ?payment_id= naming the payment. */
  function toBank(paymentId, url) {
    byId("action-title").textContent = "Taking you to your bank…";
    byId("action-text").textContent = "Your bank asks you to confirm this payment.";
    byId("continue-challenge").href = url;
    show("action");
    window.location.assign(url);
  }

  /** A challenge left unanswered (the page reloaded, another tab): offer it again, and follow the payment,
   *  which the bank's callback may finish without this page. */
  function awaitChallenge(paymentId, url) {
    byId("action-title").textContent = "Confirm the payment with your bank";
    if (url) byId("continue-challenge").href = url;
    byId("continue-challenge").hidden = !url;
    show("action");
    busy = true;
    return follow(paymentId);
  }

  /** Follow a pending payment until the bank decides; after a few minutes, slow down but never guess. */
  // Which payment the page follows: going back to the form (pay another way) stops following the last one.
  var followToken = 0;

  function follow(paymentId) {
    followToken += 1;
    return poll(paymentId, Date.now(), followToken);
  }

  function poll(paymentId, startedAt, token) {
    var elapsed = Date.now() - startedAt;
    var delay = elapsed < 120000 ? 1500 : 5000;
    if (elapsed >= 120000) {
      byId("processing-text").textContent = "Still waiting for your bank. This page updates as soon as it answers.";
    }
    return wait(delay).then(function () {
      return fetch(base + "/status?payment_id=" + encodeURIComponent(paymentId), { cache: "no-store" });
    }).then(function (res) {
      return res.ok ? res.json() : null;
    }).then(function (body) {
      if (token !== followToken) return null; // the customer went back to the form meanwhile
      var p = body && body.payment;
      if (p && SUCCEEDED.indexOf(p.status) >= 0) return succeed(p.id, p.status);
      if (p && p.status === "failed") {
        return fail(p.id, p.failure_message || "Your bank declined the payment.", p.failure_code);
      }
      if (p && p.status === "voided") {
        return fail(p.id, "This payment was cancelled by the shop.", "payment_voided", p.status);
      }
      if (p && p.status === "requires_action" && p.challenge_url && views.action.hidden) {
        // the bank's page became known only now (paygate recorded it after a crash): offer it
        byId("action-title").textContent = "Confirm the payment with your bank";
        byId("continue-challenge").href = p.challenge_url;
        byId("continue-challenge").hidden = false;
        show("action");
      }
      if (p && p.status === "pending" && !views.action.hidden) {
        processing("Confirming with your bank…", "This can take a moment. Please keep this page open.");
      }
      return poll(paymentId, startedAt, token);
    }, function () {
      return poll(paymentId, startedAt, token); // offline for a moment: keep following
    });
  }

  function answer(res, pm) {
    var body = res.body || {};
    var err = body.error || {};
    if (res.status === 201) {
      if (SUCCEEDED.indexOf(body.status) >= 0) return succeed(body.id, body.status);
      var action = body.next_action && body.next_action.redirect_to_url;
      if (body.status === "requires_action" && action && action.url) return toBank(body.id, action.url);
      if (pm.type === "upi") {
        processing("Approve the payment in your UPI app", "A request was sent to " + pm.upi.vpa +
          ". This page updates by itself once you approve it.");
      } else {
        processing("Confirming with your bank…", "This can take a moment. Please keep this page open.");
      }
      return follow(body.id);
    }
    if (res.status === 402) {
      return fail(err.payment && err.payment.id, err.message || "Your payment was declined.", err.code);
    }
    if (res.status === 400) {
      backToForm();
      var param = err.param || "";
      if (param.indexOf("[number]") >= 0) return setError(cardInput, "card-number-error", "Your card number is invalid.");
      if (param.indexOf("[vpa]") >= 0) return setError(vpaInput, "upi-vpa-error", "Enter a valid UPI ID, like name@bank.");
      if (param.indexOf("exp_") >= 0) return setError(expiryInput, "card-expiry-error", "Enter the expiry date as MM/YY.");
      if (param.indexOf("[cvc]") >= 0) return setError(cvvInput, "card-cvv-error", "Enter the 3 or 4 digit security code.");
      formError.textContent = err.message || "Check your payment details.";
      formError.hidden = false;
      return null;
    }
    if (res.status === 409 && (err.code === "order_already_paid" || err.code === "order_payment_in_progress")) {
      // Paid, or being paid (another tab, a UPI approval still awaited): show that payment, not an error.
      return fetch(base + "/status", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (s) {
        var p = s.payment;
        if (p && SUCCEEDED.indexOf(p.status) >= 0) return succeed(p.id, p.status);
        if (p && p.status === "pending") {
          processing("A payment for this order is in progress", "This page updates as soon as the bank answers.");
          return follow(p.id);
        }
        if (p && p.status === "requires_action") return awaitChallenge(p.id, p.challenge_url);
        return fail(null, err.message || "This order cannot be paid right now.", err.code);
      });
    }
    if (res.status === 404) return fail(null, "This order no longer exists. Ask the shop for a new payment link.", err.code);
    if (res.status === 429 && err.code === "too_many_attempts") {
      return fail(null, "This order has had too many failed payments.", err.code);
    }
    return fail(null, err.message || "Something went wrong; nothing was charged. Please try again.", err.code);
  }

  function payBody(saved, pm) {
    // a saved card goes by its id, without a CVC; a new one may be saved for the order's customer
    var body = saved ? { payment_method: saved }
      : saveBox && method === "card" && saveBox.checked ? { payment_method: pm, save_payment_method: true }
      : { payment_method: pm };
    // in the SDK's modal, the bank's challenge must come back to a checkout that page may frame
    if (embedded && embedOrigin) body.embed_origin = embedOrigin;
    return body;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) return;
    clearErrors();
    var saved = method === "card" ? savedCard : null;
    var pm = saved ? { type: "card", saved: saved } : method === "card" ? readCard() : readUpi();
    if (!pm) {
      var invalid = form.querySelector('[aria-invalid="true"]');
      if (invalid) invalid.focus();
      return;
    }
    busy = true;
    payButton.disabled = true;
    processing("Processing your payment…", "Please keep this page open.");
    var key = newKey(); // one attempt, one key: retries below reuse it
    send(base + "/pay", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": key },
      body: JSON.stringify(payBody(saved, pm)),
      cache: "no-store",
    }).then(function (res) {
      payButton.disabled = false;
      cvvInput.value = ""; // never keep the CVV around after it has been used
      return answer(res, pm);
    }, function () {
      fail(null, "We could not reach paygate. Check your connection and try again.", "network_error");
      payButton.disabled = false;
    });
  });

  // A challenge left unanswered: a new payment supersedes it (the server voids the one waiting, §15)
  byId("pay-another-way").addEventListener("click", function () {
    backToForm();
    cardInput.focus();
  });

  byId("retry-button").addEventListener("click", function () {
    backToForm();
    (method === "card" ? cardInput : vpaInput).focus();
  });

  var cancel = byId("cancel-button");
  if (cancel) cancel.addEventListener("click", function () { tell("close", {}); });

  // --- the state the server rendered --------------------------------------------------------------------
  var state = root.getAttribute("data-state");
  var shownId = root.getAttribute("data-payment-id");
  if (state === "paid") {
    var paidStatus = root.getAttribute("data-payment-status") || "captured";
    tell("success", { paymentId: shownId, status: paidStatus });
    backToShopSoon(shownId, paidStatus);
  } else if (state === "processing") {
    busy = true;
    follow(shownId);
  } else if (state === "action") {
    awaitChallenge(shownId, byId("continue-challenge").getAttribute("href") !== "#" ? byId("continue-challenge").href : "");
  } else if (state === "failed") {
    // back from the bank's challenge, which failed (or the authorization after it): as a decline would
    var code = root.getAttribute("data-failure-code") || "payment_failed";
    showRetry(parseInt(root.getAttribute("data-attempts-left") || "0", 10));
    tell("failure", { paymentId: shownId, error: { code: code, message: byId("failure-message").textContent } });
    backToShopSoon(shownId, "failed");
  }
})();
