/// The challenge pages' HTML: small, accessible, no external resources, every value escaped.
enum ChallengeHTML {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    /// Phone first (most cardholders see it at about 400 CSS pixels): one column, nothing wider
    /// than the screen, Verify a full-width primary button, resending and cancelling secondary;
    /// inputs and buttons in the page's font, tall enough to tap.
    static let style = """
        *{box-sizing:border-box}\
        body{font-family:system-ui,sans-serif;line-height:1.4;background:#f4f5f7;color:#1b1f24;margin:0;padding:1rem}\
        main{max-width:26rem;margin:2rem auto;background:#fff;border-radius:8px;padding:1.5rem;box-shadow:0 1px 4px #0002}\
        h1{font-size:1.25rem;line-height:1.3;margin:0 0 1rem}dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem;margin:0 0 1rem}\
        dt{color:#555}dd{margin:0;font-weight:600;overflow-wrap:anywhere}label{display:block;margin:1rem 0 .25rem;font-weight:600}\
        input,button{font:inherit}\
        input{font-size:1.5rem;letter-spacing:.3rem;width:100%;padding:.5rem .75rem;border:2px solid #6b7280;border-radius:6px}\
        button{display:block;width:100%;min-height:3rem;margin:1rem 0 0;padding:.6rem 1rem;border:0;border-radius:6px;\
        background:#0b57d0;color:#fff;font-weight:600;cursor:pointer}\
        .more{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.75rem}\
        .more button{flex:1 1 auto;width:auto;margin:0;background:#fff;color:#0b57d0;border:1px solid #c4c7cc;font-weight:500}\
        input:focus-visible,button:focus-visible{outline:3px solid #f59e0b;outline-offset:2px}\
        .alert{color:#a40000;font-weight:600}\
        @media (max-width:30rem){body{padding:.75rem}main{margin:0 auto;padding:1.25rem}}
        """

    static func document(title: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        <style>\(style)</style>
        </head>
        <body>
        <main>
        \(body)
        </main>
        </body>
        </html>
        """
    }

    /// The OTP form, with `notice` (the OTP was sent, …) and the last OTP's problem.
    static func form(_ authentication: ACSAuthentication, notice: String?) -> String {
        let request = authentication.request
        let issuer = authentication.card?.issuer ?? "Your bank"
        var problem: String?
        switch authentication.reason {
        case "incorrect_otp"?:
            let left = authentication.attemptsLeft
            problem = "Incorrect code. \(left) attempt\(left == 1 ? "" : "s") left."
        case "otp_expired"?:
            problem = "The code has expired. Send a new code."
        default:
            problem = nil
        }
        let action = ChallengePages.pathPrefix + authentication.id
        let body = """
            <h1>\(escape(issuer)): verify your payment</h1>
            <dl>
            <dt>Merchant</dt><dd>\(escape(request.merchantName))</dd>
            <dt>Amount</dt><dd>₹\(escape(Rupees.indian(request.amount)))</dd>
            <dt>Card</dt><dd>\(escape(CardMask.mask(request.cardNumber)))</dd>
            </dl>
            \(notice.map { "<p role=\"status\">\(escape($0))</p>" } ?? "")
            \(problem.map { "<p class=\"alert\" role=\"alert\" id=\"otp-problem\">\(escape($0))</p>" } ?? "")
            <form method="post" action="\(escape(action))">
            <label for="otp">One-time password (6 digits)</label>
            <input id="otp" name="otp" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" \
            minlength="6" maxlength="6" required autofocus\(problem == nil ? "" : " aria-describedby=\"otp-problem\" aria-invalid=\"true\"")>
            <button type="submit">Verify</button>
            <div class="more">
            <button type="submit" name="resend" value="1" formnovalidate>Send a new code (\(authentication.resendsLeft) left)</button>
            <button type="submit" name="cancel" value="1" formnovalidate>Cancel payment</button>
            </div>
            </form>
            """
        return document(title: "Verify your payment – \(issuer)", body: body)
    }

    /// A final result: a form that posts itself to the merchant's `return_url`, with a button
    /// for browsers without scripts.
    static func result(_ authentication: ACSAuthentication) -> String {
        guard !authentication.request.returnURL.isEmpty else {
            return message(title: "Not found", text: "This payment verification page does not exist or has expired.")
        }
        let status = authentication.status.rawValue
        let headline = switch (authentication.status, authentication.reason) {
        case (.authenticated, _): "Payment verified"
        case (_, "payment_cancelled"?): "Payment cancelled"
        default: "Payment could not be verified"
        }
        var fields = [("authentication_id", authentication.id), ("status", status)]
        if let reason = authentication.reason, authentication.status == .failed { fields.append(("reason", reason)) }
        let inputs = fields.map { "<input type=\"hidden\" name=\"\(escape($0.0))\" value=\"\(escape($0.1))\">" }.joined(separator: "\n")
        let body = """
            <h1>\(escape(headline))</h1>
            <p>Returning you to the merchant…</p>
            <form method="post" action="\(escape(authentication.request.returnURL))">
            \(inputs)
            <button type="submit">Continue</button>
            </form>
            <script>document.forms[0].submit()</script>
            """
        return document(title: headline, body: body)
    }

    static func message(title: String, text: String) -> String {
        document(title: title, body: "<h1>\(escape(title))</h1>\n<p>\(escape(text))</p>")
    }
}
