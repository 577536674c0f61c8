import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The vault's files: a private directory, files written whole or not at all, and a lock
/// between processes (a rotation, the keyring's creation).
enum VaultFiles {
    /// Creates `directory` (and its parents) mode 0700 when missing.
    static func makeDirectory(_ directory: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw VaultSetupError("\(directory) is not a directory") }
            return
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw VaultSetupError("cannot create the vault directory \(directory): \(error)")
        }
    }

    /// Writes `contents` to a new file (mode 0600) beside `path`, syncs it and renames it over
    /// `path`, then syncs the directory: readers see the old file or the new one, never half.
    static func writeAtomically(_ path: String, contents: [UInt8]) throws {
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw VaultSetupError("cannot create \(temporary): errno \(errno)") }
        var written = 0
        let ok = contents.withUnsafeBytes { raw -> Bool in
            while written < raw.count {
                let n = write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                written += n
            }
            return fsync(fd) == 0
        }
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw VaultSetupError("cannot write \(path): errno \(errno)")
        }
        let directory = (path as NSString).deletingLastPathComponent
        let dirFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_CLOEXEC)
        if dirFD >= 0 {
            fsync(dirFD)
            close(dirFD)
        }
    }

    /// Runs `body` holding an exclusive `flock` on `path` (created 0600), waiting for it without
    /// blocking a thread.
    static func withLock<T>(_ path: String, _ body: () async throws -> T) async throws -> T {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw VaultSetupError("cannot open the lock \(path): errno \(errno)") }
        defer { close(fd) }  // closing releases the lock
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else { throw VaultSetupError("cannot lock \(path): errno \(errno)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        return try await body()
    }
}
