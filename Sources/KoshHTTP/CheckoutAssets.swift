import Hummingbird
import KoshJSON

/// The checkout's page, its stylesheet and scripts: self-contained (no CDN, no web font), served
/// by Kosh under a Content-Security-Policy that lets them load nothing but Kosh's own files
/// and the merchant's logo.
enum CheckoutAssets {
    /// `default-src 'self'`: scripts, styles and calls only from Kosh; images also from the
    /// merchant's logo URL; forms may post to the merchant's callback_url; any page may frame it
    /// (checkout.js runs on the merchant's own site).
    static let contentSecurityPolicy =
        "default-src 'self'; img-src 'self' https: http: data:; script-src 'self'; style-src 'self'; connect-src 'self'; " +
        "form-action 'self' https: http:; base-uri 'none'; object-src 'none'; frame-ancestors *"

    static func response(_ text: String, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type, .cacheControl: "public, max-age=300", .init("X-Content-Type-Options")!: "nosniff"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// The page, booted with `boot` (`{"mode": "frame"}`, `{"mode": "hosted", "options": …}` or
    /// `{"mode": "return", "payment_id": …}`) as a JSON data block: not HTML, not script.
    static func page(boot: JSON) -> Response {
        let html = pageHTML.replacingOccurrences(of: "{{BOOT}}", with: scriptSafe(boot.serialized()))
        return Response(status: .ok, headers: [
            .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
            .contentSecurityPolicy: contentSecurityPolicy, .init("X-Content-Type-Options")!: "nosniff",
            .init("Referrer-Policy")!: "no-referrer",
        ], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// JSON safe inside `<script type="application/json">`: `<`, `>` and `&` only ever occur
    /// inside JSON strings, where their `\u` escapes mean the same, so `</script>` and `<!--`
    /// cannot end or change the block.
    static func scriptSafe(_ json: String) -> String {
        var out = ""
        out.reserveCapacity(json.utf8.count)
        for scalar in json.unicodeScalars {
            switch scalar {
            case "<": out += "\\u003c"
            case ">": out += "\\u003e"
            case "&": out += "\\u0026"
            case "\u{2028}": out += "\\u2028"
            case "\u{2029}": out += "\\u2029"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    static let pageHTML = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width,initial-scale=1">
    <title>Checkout</title>
    <link rel="stylesheet" href="/v1/checkout/assets/page.css">
    <script type="application/json" id="kosh-boot">{{BOOT}}</script>
    <script src="/v1/checkout/assets/page.js" defer></script>
    </head>
    <body>
    <header class="top">
      <img id="logo" alt="" hidden>
      <div class="who"><h1 id="merchant">Checkout</h1><p id="description"></p></div>
      <button type="button" id="close" class="close" aria-label="Close checkout" hidden>&times;</button>
    </header>
    <p id="amount" class="amount" aria-live="polite"></p>
    <p id="test-mode" class="test" hidden>Test mode: no real money moves.</p>
    <div id="error" class="error" role="alert" hidden></div>
    <main id="checkout" hidden>
      <section class="contact" aria-label="Your details">
        <label for="contact">Phone number</label>
        <input id="contact" type="tel" inputmode="tel" autocomplete="tel" required>
        <label for="email">Email</label>
        <input id="email" type="email" autocomplete="email" required>
      </section>
      <nav class="methods" aria-label="Payment methods">
        <button type="button" id="method-upi" aria-pressed="false" hidden>UPI</button>
        <button type="button" id="method-card" aria-pressed="false">Card</button>
        <button type="button" id="method-netbanking" aria-pressed="false" hidden>Netbanking</button>
        <button type="button" id="method-wallet" aria-pressed="false" hidden>Wallet</button>
      </nav>
      <section id="pane-upi" class="pane" hidden>
        <h2 tabindex="-1">Pay with UPI</h2>
        <button type="button" id="upi-qr-start" class="primary" hidden>Show QR code</button>
        <div id="upi-qr-box" hidden>
          <img id="upi-qr" class="qr" width="264" height="264" alt="UPI QR code: scan it with any UPI app">
          <a id="upi-intent" class="primary intent" href="#">Pay with a UPI app</a>
        </div>
        <form id="upi-collect" hidden>
          <label for="vpa">UPI ID</label>
          <input id="vpa" type="text" autocomplete="off" autocapitalize="none" spellcheck="false" placeholder="name@bank">
          <button type="submit" class="primary">Send a payment request</button>
        </form>
      </section>
      <section id="pane-card" class="pane" hidden>
        <h2 tabindex="-1">Pay with a card</h2>
        <div id="saved" hidden>
          <h3>Saved cards</h3>
          <label for="saved-cvv">CVV of the saved card</label>
          <input id="saved-cvv" type="password" inputmode="numeric" autocomplete="cc-csc" maxlength="4">
          <div id="saved-cards" class="grid"></div>
          <h3>Or a new card</h3>
        </div>
        <form id="card-form">
          <label for="card-number">Card number</label>
          <input id="card-number" type="text" inputmode="numeric" autocomplete="cc-number" maxlength="23" aria-describedby="card-network">
          <p id="card-network" class="hint" aria-live="polite"></p>
          <div class="row">
            <div><label for="card-expiry">Expiry (MM/YY)</label>
            <input id="card-expiry" type="text" inputmode="numeric" autocomplete="cc-exp" maxlength="5" placeholder="MM/YY"></div>
            <div><label for="card-cvv">CVV</label>
            <input id="card-cvv" type="password" inputmode="numeric" autocomplete="cc-csc" maxlength="4"></div>
          </div>
          <label for="card-name">Name on card</label>
          <input id="card-name" type="text" autocomplete="cc-name">
          <button type="submit" class="primary">Pay</button>
        </form>
      </section>
      <section id="pane-netbanking" class="pane" hidden>
        <h2 tabindex="-1">Pay with netbanking</h2>
        <div id="popular-banks" class="grid"></div>
        <label for="bank-search">Search all banks</label>
        <input id="bank-search" type="search" autocomplete="off" aria-controls="bank-list" aria-describedby="bank-count">
        <p id="bank-count" class="hint" aria-live="polite"></p>
        <ul id="bank-list" class="list"></ul>
      </section>
      <section id="pane-wallet" class="pane" hidden>
        <h2 tabindex="-1">Pay with a wallet</h2>
        <div id="wallet-list" class="grid"></div>
      </section>
      <p id="status" class="status" role="status" aria-live="polite"></p>
    </main>
    <section id="done" class="done" tabindex="-1" hidden>
      <h2>Payment successful</h2>
      <p>Payment id <span id="done-id"></span></p>
    </section>
    <form id="return-form" method="post" hidden></form>
    <footer>Secured by Kosh</footer>
    </body>
    </html>
    """#

    static let pageCSS = #"""
    :root{--accent:#1f4fd1;--on-accent:#fff;--text:#16181d;--muted:#4f5663;--line:#c9ced6;--bad:#b3261e;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
    *{box-sizing:border-box}
    body{margin:0;color:var(--text);background:#fff;font-size:16px;line-height:1.4;min-height:100vh;display:flex;flex-direction:column}
    [hidden]{display:none!important}
    .top{display:flex;align-items:center;gap:.75rem;padding:1rem;background:var(--accent);color:var(--on-accent)}
    .top img{width:44px;height:44px;border-radius:6px;background:#fff;object-fit:contain}
    .who{flex:1;min-width:0}
    .who h1{font-size:1.15rem;margin:0;overflow-wrap:anywhere}
    .who p{margin:.15rem 0 0;font-size:.9rem;opacity:.95;overflow-wrap:anywhere}
    .close{background:transparent;color:inherit;border:0;font-size:1.8rem;line-height:1;padding:.25rem .6rem;cursor:pointer;border-radius:6px}
    .amount{font-size:1.6rem;font-weight:700;margin:0;padding:.75rem 1rem 0}
    .test{margin:.25rem 1rem 0;font-size:.85rem;color:#7a4b00}
    main,.done{padding:0 1rem 1rem;flex:1}
    label{display:block;font-weight:600;font-size:.9rem;margin:.75rem 0 .25rem}
    input{width:100%;font:inherit;padding:.65rem .75rem;border:1px solid var(--line);border-radius:6px;color:var(--text);background:#fff}
    button,.primary{font:inherit;cursor:pointer;-webkit-tap-highlight-color:transparent}
    :focus-visible{outline:3px solid #111;outline-offset:2px}
    .methods{display:grid;grid-template-columns:repeat(2,1fr);gap:.5rem;margin:1rem 0}
    .methods button{padding:.7rem .5rem;border:1px solid var(--line);border-radius:6px;background:#f4f6f9;color:var(--text);font-weight:600}
    .methods button[aria-pressed=true]{border-color:var(--accent);box-shadow:inset 0 0 0 2px var(--accent);background:#fff}
    .pane h2{font-size:1.05rem;margin:.5rem 0}
    .pane h3{font-size:.95rem;margin:1rem 0 .25rem}
    .primary{display:block;width:100%;margin-top:1rem;padding:.8rem;border:0;border-radius:6px;background:var(--accent);color:var(--on-accent);
      font-weight:700;text-align:center;text-decoration:none}
    button:disabled{opacity:.6;cursor:progress}
    .grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(8.5rem,1fr));gap:.5rem}
    .choice{padding:.7rem .5rem;border:1px solid var(--line);border-radius:6px;background:#fff;color:var(--text);text-align:left;width:100%}
    .list{list-style:none;margin:.5rem 0 0;padding:0;max-height:14rem;overflow:auto;border:1px solid var(--line);border-radius:6px}
    .list .choice{border:0;border-bottom:1px solid #e6e8ec;border-radius:0}
    .row{display:grid;grid-template-columns:1fr 1fr;gap:.75rem}
    .hint{margin:.25rem 0 0;font-size:.85rem;color:var(--muted);min-height:1.2em}
    .qr{display:block;margin:.5rem auto;width:min(264px,70vw);height:auto;image-rendering:pixelated;border:1px solid var(--line)}
    .intent{display:none}
    @media (max-width:640px){.intent{display:block}}
    .error{margin:.75rem 1rem 0;padding:.6rem .75rem;border-radius:6px;background:#fdecea;color:var(--bad);font-weight:600}
    .status{color:var(--muted);min-height:1.4em}
    .done h2{color:#0b6b2b}
    footer{padding:.75rem 1rem;font-size:.8rem;color:var(--muted);text-align:center;border-top:1px solid #e6e8ec}
    """#
}
