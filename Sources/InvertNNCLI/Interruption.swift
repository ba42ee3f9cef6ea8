import Foundation

/// Ctrl-C (SIGINT) during training: the first one asks the trainer to stop after the current
/// step, so that the state of the last complete epoch can be written; a second one ends the
/// process at once (the default action is restored by the first).
enum Interruption {
    /// Set by the signal handler; read by the training loop.
    nonisolated(unsafe) static var flag: sig_atomic_t = 0

    /// Installs the handler, and unblocks SIGINT in case the parent process started this one
    /// with it blocked.
    static func install() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
        signal(SIGINT) { _ in
            Interruption.flag = 1
            signal(SIGINT, SIG_DFL)
        }
    }

    /// Whether SIGINT has arrived since ``install()``.
    static var requested: Bool { flag != 0 }
}
