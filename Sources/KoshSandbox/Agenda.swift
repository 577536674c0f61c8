/// Work the sandbox owes at a later time, as a plain value: payer decisions, expiries and
/// callback attempts by due time (unix ms on the sandbox's clock). Entries due at the same time
/// come out in the order they were added.
struct Agenda: Sendable {
    enum Work: Sendable {
        case timer(TimerEvent)
        case callback(CallbackAttempt)
    }

    private struct Entry: Sendable {
        let due: Int64
        let order: UInt64
        let work: Work

        func precedes(_ other: Entry) -> Bool { (due, order) < (other.due, other.order) }
    }

    /// A binary min-heap on (due, order).
    private var heap: [Entry] = []
    private var nextOrder: UInt64 = 0

    var count: Int { heap.count }
    var nextDue: Int64? { heap.first?.due }

    mutating func add(_ work: Work, due: Int64) {
        heap.append(Entry(due: due, order: nextOrder, work: work))
        nextOrder += 1
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and answers the earliest entry if it is due at `now`.
    mutating func takeNext(dueBy now: Int64) -> (due: Int64, work: Work)? {
        guard let first = heap.first, first.due <= now else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < heap.count && heap[left].precedes(heap[smallest]) { smallest = left }
                if right < heap.count && heap[right].precedes(heap[smallest]) { smallest = right }
                guard smallest != parent else { break }
                heap.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return (first.due, first.work)
    }
}

/// One try at delivering one copy of a callback.
struct CallbackAttempt: Sendable {
    let job: CallbackJob
    /// The world's epoch when the callback was made; a reset drops what is left of it.
    let epoch: UInt64
    let copy: Int
    let attempt: Int
}
