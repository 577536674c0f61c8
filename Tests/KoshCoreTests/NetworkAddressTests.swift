import KoshCore
import Testing

@Suite("Network addresses and webhook URLs")
struct NetworkAddressTests {
    /// Every way a URL can name a loopback, private, link-local or otherwise special address
    /// that resolvers and browsers accept: each must be read as that address and refused.
    @Test("odd and embedded forms of special addresses are parsed as resolvers read them, and refused", arguments: [
        ("127.0.0.1", "127.0.0.1"), ("localhost.", nil), ("2130706433", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"), ("127.1", "127.0.0.1"), ("127.0.1", "127.0.0.1"), ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"), ("0x7F.0.0.0x1", "127.0.0.1"), ("127.0.0.1.", "127.0.0.1"), ("0", "0.0.0.0"),
        ("0.0.0.0", "0.0.0.0"), ("0x", "0.0.0.0"), ("10.1.2.3", "10.1.2.3"), ("012.1", "10.0.0.1"), ("167772161", "10.0.0.1"),
        ("100.64.0.1", "100.64.0.1"), ("100.127.255.255", "100.127.255.255"), ("169.254.169.254", "169.254.169.254"),
        ("0xa9fea9fe", "169.254.169.254"), ("2852039166", "169.254.169.254"), ("172.16.0.1", "172.16.0.1"),
        ("172.31.255.255", "172.31.255.255"), ("192.0.0.8", "192.0.0.8"), ("192.0.2.1", "192.0.2.1"), ("192.88.99.1", "192.88.99.1"),
        ("192.168.1.1", "192.168.1.1"), ("0xc0a80101", "192.168.1.1"), ("198.18.0.1", "198.18.0.1"), ("198.19.255.1", "198.19.255.1"),
        ("198.51.100.7", "198.51.100.7"), ("203.0.113.9", "203.0.113.9"), ("224.0.0.1", "224.0.0.1"), ("239.255.255.250", "239.255.255.250"),
        ("240.0.0.1", "240.0.0.1"), ("255.255.255.255", "255.255.255.255"), ("4294967295", "255.255.255.255"),
        ("[::1]", "::1"), ("[::]", "::"), ("[0:0:0:0:0:0:0:1]", "::1"), ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("[::ffff:7f00:1]", "::ffff:7f00:1"), ("[::ffff:169.254.169.254]", "::ffff:a9fe:a9fe"), ("[::127.0.0.1]", "::7f00:1"),
        ("[::ffff:0:10.0.0.1]", "::ffff:0:a00:1"), ("[64:ff9b::127.0.0.1]", "64:ff9b::7f00:1"), ("[64:ff9b::a9fe:a9fe]", "64:ff9b::a9fe:a9fe"),
        ("[64:ff9b:1::1]", "64:ff9b:1::1"), ("[2002:7f00:1::]", "2002:7f00:1::"), ("[2002:c0a8:0101::1]", "2002:c0a8:101::1"),
        ("[fc00::1]", "fc00::1"), ("[fd12:3456::1]", "fd12:3456::1"), ("[fe80::1]", "fe80::1"), ("[febf::1]", "febf::1"),
        ("[fec0::1]", "fec0::1"), ("[ff02::1]", "ff02::1"), ("[2001:db8::1]", "2001:db8::1"), ("[100::1]", "100::1"),
        ("[2001::1]", "2001::1"), ("[3fff::1]", "3fff::1"), ("[5f00::1]", "5f00::1"), ("[::ffff:0.0.0.0]", "::ffff:0:0"),
    ] as [(String, String?)])
    func specialAddressesAreRefused(host: String, canonical: String?) throws {
        let url = try WebhookURL.parse("http://\(host)/hook")
        if let canonical {
            guard case .address(let address) = url.host else { Issue.record("\(host) was read as a name"); return }
            #expect(address.description == canonical)
            #expect(!address.isPublic)
            #expect(url.hostRefusal == .privateAddress)
        } else {
            #expect(url.hostRefusal == .privateName)
        }
    }

    @Test("public addresses, in any form, are public", arguments: [
        ("93.184.215.14", "93.184.215.14"), ("0x5db8d70e", "93.184.215.14"), ("1572394766", "93.184.215.14"), ("8.8.8.8", "8.8.8.8"),
        ("100.63.255.255", "100.63.255.255"), ("100.128.0.1", "100.128.0.1"), ("172.15.255.255", "172.15.255.255"),
        ("172.32.0.1", "172.32.0.1"), ("192.0.1.1", "192.0.1.1"), ("198.17.255.255", "198.17.255.255"), ("198.20.0.1", "198.20.0.1"),
        ("223.255.255.255", "223.255.255.255"), ("11.0.0.1", "11.0.0.1"), ("126.255.255.255", "126.255.255.255"),
        ("128.0.0.1", "128.0.0.1"), ("169.253.255.255", "169.253.255.255"),
        ("[2606:2800:21f:cb07:6820:80da:af6b:8b2c]", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"), ("[2a00:1450:4001::200e]", "2a00:1450:4001::200e"),
        ("[::ffff:8.8.8.8]", "::ffff:808:808"), ("[64:ff9b::8.8.8.8]", "64:ff9b::808:808"), ("[2002:0808:0808::1]", "2002:808:808::1"),
        ("[2001:4860:4860::8888]", "2001:4860:4860::8888"),
    ])
    func publicAddressesPass(host: String, canonical: String) throws {
        let url = try WebhookURL.parse("https://\(host):8443/hook")
        guard case .address(let address) = url.host else { Issue.record("\(host) was read as a name"); return }
        #expect(address.description == canonical)
        #expect(address.isPublic)
        #expect(url.hostRefusal == nil)
        #expect(url.port == 8443)
    }

    @Test("local names are refused before any lookup; other names wait for one", arguments: [
        ("localhost", true), ("LOCALHOST", true), ("localhost.", true), ("api.localhost", true), ("printer.local", true),
        ("metadata.google.internal", true), ("nas.home.arpa", true), ("home.arpa", true), ("localhost.localdomain", true),
        ("intranet", true), ("kosh", true), ("hooks.example.com", false), ("example.com.", false), ("xn--80ak6aa92e.com", false),
        ("local.example.com", false), ("internal-api.example.com", false), ("my_host.example.com", false),
    ])
    func localNames(host: String, refused: Bool) throws {
        let url = try WebhookURL.parse("https://\(host)/hook")
        guard case .name(let name) = url.host else { Issue.record("\(host) was read as an address"); return }
        #expect(name == name.lowercased() && !name.hasSuffix("."))
        #expect(url.hostRefusal == (refused ? .privateName : nil))
        #expect(url.hostText == host)
    }

    @Test("malformed URLs, user info, bad ports and zone ids are refused", arguments: [
        ("ftp://example.com/x", WebhookURL.Problem.malformed), ("example.com/x", .malformed), ("http:/example.com", .malformed),
        ("http://", .malformed), ("http:///x", .malformed), ("http://:80/x", .malformed), ("http://exa mple.com", .malformed),
        ("http://example.com\\@127.0.0.1/", .malformed), ("http://ex%61mple.com/", .malformed), ("http://127.0.0.%31/", .malformed),
        ("http://exämple.com/", .malformed), ("http://1.2.3.4.5/", .malformed), ("http://256.1.1.1/", .malformed),
        ("http://1.2.3.0x100/", .malformed), ("http://1.16777216/", .malformed), ("http://4294967296/", .malformed),
        ("http://08.1.1.1/", .malformed), ("http://example.0x1/", .malformed), ("http://a..b.com/", .malformed),
        ("http://[::1/", .malformed), ("http://[1:2:3:4:5:6:7:8:9]/", .malformed), ("http://[1::2::3]/", .malformed),
        ("http://[::ffff:127.0.0.01]/", .malformed), ("http://[12345::1]/", .malformed), ("http://[::1]x/", .malformed),
        ("http://[fe80::1%25eth0]/", .privateAddress), ("http://[fe80::1%eth0]/", .privateAddress),
        ("http://user@example.com/", .userInfo), ("http://user:pass@example.com/", .userInfo), ("https://@example.com/", .userInfo),
        ("http://example.com:0/", .badPort), ("http://example.com:65536/", .badPort), ("http://example.com:/", .badPort),
        ("http://example.com:-1/", .badPort), ("http://example.com:8o/", .badPort), ("http://[::1]:99999/", .badPort),
    ])
    func refusedURLs(text: String, problem: WebhookURL.Problem) {
        #expect(throws: problem) { try WebhookURL.parse(text) }
    }

    @Test func wellFormedURLsKeepTheirParts() throws {
        let plain = try WebhookURL.parse("HTTP://Hooks.Example.com/razorpay?x=1#y")
        #expect(!plain.secure && plain.port == 80 && plain.host == .name("hooks.example.com") && plain.hostText == "Hooks.Example.com")
        let secure = try WebhookURL.parse("https://hooks.example.com:8443")
        #expect(secure.secure && secure.port == 8443)
        let v6 = try WebhookURL.parse("https://[2606:4700::1111]:444/x")
        #expect(v6.host == .address(.v6(0x2606_4700_0000_0000_0000_0000_0000_1111)) && v6.hostText == "2606:4700::1111" && v6.port == 444)
    }

    @Test("a name is refused when any of its addresses is not public, or when it has none")
    func judgingResolvedAddresses() {
        let public1 = NetworkAddress.ipv4(93, 184, 215, 14), public2 = NetworkAddress.v6(0x2606_2800 << 96)
        #expect(WebhookURL.judge(resolved: [public1, public2]) == nil)
        #expect(WebhookURL.judge(resolved: []) == .unresolved)
        #expect(WebhookURL.judge(resolved: [public1, .ipv4(127, 0, 0, 1)]) == .privateAddress)
        #expect(WebhookURL.judge(resolved: [.v6(1), public1]) == .privateAddress)
    }

    @Test("canonical text follows RFC 5952", arguments: [
        ("1:0:0:2:0:0:0:3", "1:0:0:2::3"), ("1:0:0:0:2:0:0:3", "1::2:0:0:3"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"), ("0:0:0:0:0:0:0:0", "::"), ("ABCD::EF", "abcd::ef"),
    ])
    func ipv6Text(input: String, canonical: String) throws {
        #expect(NetworkAddress.parseIPv6(Substring(input)).map { NetworkAddress.v6($0).description } == canonical)
    }

    @Test func socketBytes() {
        #expect(NetworkAddress(bytes: [127, 0, 0, 1]) == .ipv4(127, 0, 0, 1))
        #expect(NetworkAddress(bytes: Array(repeating: 0, count: 15) + [1]) == .v6(1))
        #expect(NetworkAddress(bytes: [1, 2, 3]) == nil)
    }
}
