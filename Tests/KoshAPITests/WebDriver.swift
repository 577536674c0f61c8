import AsyncHTTPClient
import Foundation
import KoshJSON
import NIOCore
import NIOHTTP1
import Testing

struct WebDriverError: Error, CustomStringConvertible {
    /// WebDriver's error code (`no such element`, `stale element reference`, …) when it answered one.
    var code: String? = nil
    let description: String
}

/// Headless Chromium driven through chromedriver's W3C WebDriver API (JSON over HTTP): one
/// session of one chromedriver process, both ended by `run` whatever the test did.
struct Browser: Sendable {
    static let chromedriver = "/usr/bin/chromedriver"
    /// The key of an element reference in WebDriver's JSON.
    static let elementKey = "element-6066-11e4-a52e-4f735466cecf"
    /// A phone-sized window: the ACS's challenge page is mostly seen on phones.
    static let arguments = ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=412,915"]
    /// Chromium keeps a window at least 500 px wide whatever `--window-size` says, so the page
    /// is also given a phone's viewport, 412 × 915 CSS pixels (at 1 device pixel per CSS pixel,
    /// so a screenshot is 412 px wide too).
    static let viewport = (width: 412, height: 915)

    let http: HTTPClient
    /// e.g. http://127.0.0.1:24567/session/<id>
    let sessionURL: String

    /// Whether chromedriver is installed; records an issue when it is not. CI installs Chromium,
    /// so a missing browser is a broken set-up, never a reason to pass quietly.
    static func installed(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        guard FileManager.default.isExecutableFile(atPath: chromedriver) else {
            Issue.record("chromium is missing: \(chromedriver) not found (apt-get install chromium chromium-driver; .ci/run installs them)",
                         sourceLocation: sourceLocation)
            return false
        }
        return true
    }

    /// Starts chromedriver on a free port and a Chromium session in it, runs `body`, then quits
    /// the session and terminates chromedriver — also when `body` throws.
    ///
    /// `phone` (the default): a phone's viewport by Chromium's mobile emulation. A desktop
    /// window otherwise, 1280 × 900: emulation loses its metrics once an iframe navigates to
    /// another origin and back (the checkout's 3-D Secure and bank pages), so tests of those
    /// flows run on a desktop window.
    static func run(phone: Bool = true, _ body: (Browser) async throws -> Void) async throws {
        guard FileManager.default.isExecutableFile(atPath: chromedriver) else {
            throw WebDriverError(description: "chromium is missing: \(chromedriver) not found")
        }
        let port = CommandLineTests.freePort()
        let logPath = FileManager.default.temporaryDirectory.appendingPathComponent("kosh-chromedriver-\(UUID().uuidString).log").path
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromedriver)
        process.arguments = ["--port=\(port)"]
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let base = "http://127.0.0.1:\(port)"
        var session: String?
        func stop() async {
            if let session { _ = try? await Self.call(http, .DELETE, "\(base)/session/\(session)", nil, timeout: .seconds(20)) }
            try? await http.shutdown()
            process.terminate()
            // Real time on purpose: chromedriver is another process; it exits within milliseconds of SIGTERM.
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? log.close()
            try? FileManager.default.removeItem(atPath: logPath)
        }
        do {
            try await waitUntilReady(http, base, process: process, logPath: logPath)
            let capabilities = JSON.object([("capabilities", .object([("alwaysMatch", .object([
                ("browserName", .string("chrome")),
                ("goog:chromeOptions", .object(phone ? [
                    ("args", .array(arguments.map(JSON.string))),
                    ("mobileEmulation", .object([("deviceMetrics", .object([
                        ("width", .int(Int64(viewport.width))), ("height", .int(Int64(viewport.height))), ("pixelRatio", .int(1)),
                        ("touch", .bool(true)), ("mobile", .bool(true)),
                    ]))])),
                ] : [
                    ("args", .array((arguments.filter { !$0.hasPrefix("--window-size") } + ["--window-size=1280,900"]).map(JSON.string))),
                ])),
            ]))]))])
            // Chromium's first start on a busy 2-core machine can take a while.
            let created = try await call(http, .POST, "\(base)/session", capabilities, timeout: .seconds(60))
            guard case .string(let id)? = created["sessionId"] else { throw WebDriverError(description: "no session id in \(created.serialized())") }
            session = id
            try await body(Browser(http: http, sessionURL: "\(base)/session/\(id)"))
        } catch {
            await stop()
            throw error
        }
        await stop()
    }

    static func waitUntilReady(_ http: HTTPClient, _ base: String, process: Process, logPath: String) async throws {
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline {
            guard process.isRunning else { break }
            if let status = try? await call(http, .GET, "\(base)/status", nil, timeout: .seconds(2)), status["ready"] == .bool(true) { return }
            // Real time on purpose: chromedriver is a separate process starting up.
            try await Task.sleep(for: .milliseconds(50))
        }
        let output = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        throw WebDriverError(description: "chromedriver did not become ready: \(output)")
    }

    /// One WebDriver command: its `value`, or a thrown error with WebDriver's `error` and `message`.
    static func call(_ http: HTTPClient, _ method: HTTPMethod, _ url: String, _ body: JSON?, timeout: TimeAmount) async throws -> JSON {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
            request.body = .bytes(ByteBuffer(string: body.serialized()))
        }
        let response = try await http.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let json = (try? JSON.parse(bytes.readableBytesView)) ?? .null
        let value = json["value"] ?? .null
        guard response.status == .ok else {
            var code: String?
            if case .string(let text)? = value["error"] { code = text }
            throw WebDriverError(code: code, description: "\(method) \(url): \(response.status.code) \(value["error"]?.serialized() ?? "") \(value["message"]?.serialized() ?? String(buffer: bytes))")
        }
        return value
    }

    @discardableResult
    func command(_ method: HTTPMethod, _ path: String, _ body: JSON? = nil) async throws -> JSON {
        // Generous: a click can wait for the navigation it starts (the ACS, then Kosh and the acquirer).
        try await Self.call(http, method, sessionURL + path, method == .POST ? body ?? .object([]) : body, timeout: .seconds(30))
    }

    private func string(_ value: JSON, _ what: String) throws -> String {
        guard case .string(let text) = value else { throw WebDriverError(description: "\(what) is not a string: \(value.serialized())") }
        return text
    }

    func navigate(to url: String) async throws { try await command(.POST, "/url", .object([("url", .string(url))])) }
    func title() async throws -> String { try string(try await command(.GET, "/title"), "title") }
    func currentURL() async throws -> String { try string(try await command(.GET, "/url"), "url") }
    func source() async throws -> String { try string(try await command(.GET, "/source"), "page source") }

    /// Commands go to the page's first iframe from now on (`frame(0)`), or back to the top page (`topFrame()`).
    func frame(_ index: Int) async throws { try await command(.POST, "/frame", .object([("id", .int(Int64(index)))])) }
    func topFrame() async throws { try await command(.POST, "/frame", .object([("id", .null)])) }

    /// Runs `script` (a function body) in the page; its return value.
    @discardableResult
    func execute(_ script: String, _ arguments: [JSON] = []) async throws -> JSON {
        try await command(.POST, "/execute/sync", .object([("script", .string(script)), ("args", .array(arguments))]))
    }

    /// The first element matching a CSS selector (WebDriver's `no such element` error when none does).
    func element(_ css: String) async throws -> Element {
        let found = try await command(.POST, "/element", .object([("using", .string("css selector")), ("value", .string(css))]))
        guard case .string(let id)? = found[Self.elementKey] else { throw WebDriverError(description: "no element reference for \(css)") }
        return Element(browser: self, id: id)
    }

    /// Every element matching a CSS selector.
    func elements(_ css: String) async throws -> [Element] {
        let found = try await command(.POST, "/elements", .object([("using", .string("css selector")), ("value", .string(css))]))
        guard case .array(let items) = found else { return [] }
        return items.compactMap { item in if case .string(let id)? = item[Self.elementKey] { Element(browser: self, id: id) } else { nil } }
    }

    /// The visible text of the first element matching `css`.
    func text(_ css: String) async throws -> String { try await element(css).text() }

    /// A PNG of the viewport.
    func screenshot() async throws -> Data {
        let encoded = try string(try await command(.GET, "/screenshot"), "screenshot")
        guard let data = Data(base64Encoded: encoded) else { throw WebDriverError(description: "the screenshot is not base64") }
        return data
    }

    /// Waits (polling the page) until `done` holds; records an issue and answers false if it never does.
    @discardableResult
    func wait(_ what: String, seconds: Double = 15, sourceLocation: SourceLocation = #_sourceLocation,
              until done: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? await done()) == true { return true }
            // Real time on purpose: the browser, Kosh, the ACS and the acquirer all run on real time.
            try await Task.sleep(for: .milliseconds(50))
        }
        if try await done() { return true }
        let url = (try? await currentURL()) ?? "?"
        Issue.record("waited \(seconds) s for \(what); the browser is at \(url)", sourceLocation: sourceLocation)
        return false
    }

    struct Element: Sendable {
        let browser: Browser
        let id: String

        func text() async throws -> String { try browser.string(try await browser.command(.GET, "/element/\(id)/text"), "element text") }
        func attribute(_ name: String) async throws -> String? {
            if case .string(let value) = try await browser.command(.GET, "/element/\(id)/attribute/\(name)") { return value }
            return nil
        }
        func property(_ name: String) async throws -> JSON { try await browser.command(.GET, "/element/\(id)/property/\(name)") }
        func sendKeys(_ text: String) async throws { try await browser.command(.POST, "/element/\(id)/value", .object([("text", .string(text))])) }
        func clear() async throws { try await browser.command(.POST, "/element/\(id)/clear") }
        func click() async throws { try await browser.command(.POST, "/element/\(id)/click") }
        func isDisplayed() async throws -> Bool { try await browser.command(.GET, "/element/\(id)/displayed") == .bool(true) }
        /// Whether the element's page has gone (WebDriver's `stale element reference`, or `no such
        /// element` when its frame has navigated).
        func isStale() async throws -> Bool {
            do {
                _ = try await browser.command(.GET, "/element/\(id)/name")
                return false
            } catch let error as WebDriverError where error.code == "stale element reference" || error.code == "no such element" {
                // In a frame that navigated, chromedriver may answer that the element is no more.
                return true
            }
        }
        /// x, y, width, height in CSS pixels.
        func rect() async throws -> (x: Double, y: Double, width: Double, height: Double) {
            let rect = try await browser.command(.GET, "/element/\(id)/rect")
            func number(_ key: String) -> Double {
                switch rect[key] {
                case .int(let i)?: Double(i)
                case .number(let n)?: Double(n) ?? 0
                default: 0
                }
            }
            return (number("x"), number("y"), number("width"), number("height"))
        }
    }
}

/// Where screenshots go: `KOSH_SCREENSHOTS`, or a new temporary directory.
enum Screenshots {
    static let directory: String = {
        let path = ProcessInfo.processInfo.environment["KOSH_SCREENSHOTS"].flatMap { $0.isEmpty ? nil : $0 }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("kosh-screenshots-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    /// Saves the browser's viewport as `<name>.png` and prints the path.
    @discardableResult
    static func save(_ browser: Browser, _ name: String) async throws -> String {
        let path = (directory as NSString).appendingPathComponent("\(name).png")
        let png = try await browser.screenshot()
        try png.write(to: URL(fileURLWithPath: path))
        print("screenshot: \(path)")
        return path
    }
}
