import Foundation
import GRDB

/// The storage classes a reader of a tamperable table accepts: each type only from its own.
protocol StoredValue {
    init?(exactly value: DatabaseValue)
}

extension Int64: StoredValue {
    init?(exactly value: DatabaseValue) {
        guard case .int64(let i) = value.storage else { return nil }
        self = i
    }
}

extension Bool: StoredValue {
    /// An integer only (the result of a comparison or `EXISTS`): nonzero is true.
    init?(exactly value: DatabaseValue) {
        guard case .int64(let i) = value.storage else { return nil }
        self = i != 0
    }
}

extension String: StoredValue {
    init?(exactly value: DatabaseValue) {
        guard case .string(let s) = value.storage else { return nil }
        self = s
    }
}

extension Data: StoredValue {
    init?(exactly value: DatabaseValue) {
        guard case .blob(let d) = value.storage else { return nil }
        self = d
    }
}

extension Row {
    /// Column `index` as `T` if it is stored as `T`'s storage class (INTEGER for `Int64` and
    /// `Bool`, TEXT for `String`, BLOB for `Data`); nil when it is NULL or of another class.
    ///
    /// For every table a tampered file can change: a column's declared type binds no one who
    /// rewrites the schema (`PRAGMA writable_schema`), and GRDB's typed subscript (`row[i] as
    /// Int64?`) stops the process on a value it cannot convert, where the reader must report it;
    /// nor is a REAL truncated to an integer or a TEXT taken for a BLOB.
    func stored<T: StoredValue>(_ index: Int, as type: T.Type = T.self) -> T? {
        T(exactly: self[index] as DatabaseValue)
    }

    /// Column `name` as `T` (see ``stored(_:as:)-(Int,_)``); nil when it is missing too.
    func stored<T: StoredValue>(_ name: String, as type: T.Type = T.self) -> T? {
        guard let value = self[name] as DatabaseValue? else { return nil }
        return T(exactly: value)
    }
}
