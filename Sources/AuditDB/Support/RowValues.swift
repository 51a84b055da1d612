import GRDB

extension Row {
    /// Column `index` converted to `T`; nil when it is NULL or holds a value that does not convert.
    ///
    /// For every table a tampered file can change: a column's declared type binds no one who
    /// rewrites the schema (`PRAGMA writable_schema`), and GRDB's typed subscript (`row[i] as
    /// Int64?`) stops the process on a value of another type, where the reader must report it.
    func lenient<T: DatabaseValueConvertible>(_ index: Int, as type: T.Type = T.self) -> T? {
        T.fromDatabaseValue(self[index] as DatabaseValue)
    }

    /// Column `name` converted to `T`; nil when it is missing, NULL or does not convert (see
    /// ``lenient(_:as:)-(Int,_)``).
    func lenient<T: DatabaseValueConvertible>(_ name: String, as type: T.Type = T.self) -> T? {
        guard let value = self[name] as DatabaseValue? else { return nil }
        return T.fromDatabaseValue(value)
    }
}
