import ArgumentParser
import AsyncHTTPClient
import KoshBench
import KoshJSON
import KoshRails
import NIOHTTP1

/// The sandbox as the load tool's payer: signed calls to the payer's app and the bank's page.
extension SandboxOTPReader: SandboxPlayer {
    func payQR(link: String, payerVPA: String) async throws {
        let body = JSON.object([("link", .string(link)), ("payer_vpa", .string(payerVPA))]).serialized()
        try await send(.POST, "/upi/v1/app/pay", body: body, expect: 202)
    }

    func approveRedirect(paymentID: String) async throws {
        try await send(.POST, "/sandbox/v1/redirect/\(paymentID)/approve", body: nil, expect: 200)
    }

    func send(_ method: HTTPMethod, _ path: String, body: String?, expect: UInt) async throws {
        let response = try await client.execute(signer.request(baseURL: baseURL, method: method, path: path, body: body), timeout: .seconds(10))
        let answer = try await response.body.collect(upTo: 64 * 1024)
        guard response.status.code == expect else {
            throw ValidationError("the sandbox answered \(path) with HTTP \(response.status.code): \(String(buffer: answer).prefix(200))")
        }
    }
}
