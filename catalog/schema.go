package catalog

import (
	"github.com/apache/iceberg-go"
	"github.com/apache/iceberg-go/table"
)

// Iceberg field IDs of the event schema. CreateTable assigns fresh IDs in
// schema order, so the schema lists the fields in exactly this order; the
// Parquet writer in flush/ puts the same IDs on its columns.
const (
	FieldSequence       = 1 // long, required
	FieldTopic          = 2 // string, required
	FieldPartition      = 3 // int, required
	FieldPayload        = 4 // binary, required
	FieldTimestampMs    = 5 // long, required
	FieldIdempotencyKey = 6 // string, optional
	FieldEventDate      = 7 // date, required (days since 1970-01-01, UTC)
	FieldEventHour      = 8 // int, required (0..23, UTC)
)

// Partition field IDs of the spec identity(event_date), identity(event_hour).
const (
	PartitionFieldEventDate = 1000
	PartitionFieldEventHour = 1001
)

// Schema returns the Iceberg schema of an event table (DESIGN §4).
func Schema() *iceberg.Schema {
	return iceberg.NewSchema(0,
		iceberg.NestedField{ID: FieldSequence, Name: "sequence", Type: iceberg.PrimitiveTypes.Int64, Required: true},
		iceberg.NestedField{ID: FieldTopic, Name: "topic", Type: iceberg.PrimitiveTypes.String, Required: true},
		iceberg.NestedField{ID: FieldPartition, Name: "partition", Type: iceberg.PrimitiveTypes.Int32, Required: true},
		iceberg.NestedField{ID: FieldPayload, Name: "payload", Type: iceberg.PrimitiveTypes.Binary, Required: true},
		iceberg.NestedField{ID: FieldTimestampMs, Name: "timestamp_ms", Type: iceberg.PrimitiveTypes.Int64, Required: true},
		iceberg.NestedField{ID: FieldIdempotencyKey, Name: "idempotency_key", Type: iceberg.PrimitiveTypes.String, Required: false},
		iceberg.NestedField{ID: FieldEventDate, Name: "event_date", Type: iceberg.PrimitiveTypes.Date, Required: true},
		iceberg.NestedField{ID: FieldEventHour, Name: "event_hour", Type: iceberg.PrimitiveTypes.Int32, Required: true},
	)
}

// PartitionSpec returns identity(event_date), identity(event_hour).
func PartitionSpec() iceberg.PartitionSpec {
	return iceberg.NewPartitionSpec(
		iceberg.PartitionField{SourceIDs: []int{FieldEventDate}, FieldID: PartitionFieldEventDate, Name: "event_date", Transform: iceberg.IdentityTransform{}},
		iceberg.PartitionField{SourceIDs: []int{FieldEventHour}, FieldID: PartitionFieldEventHour, Name: "event_hour", Transform: iceberg.IdentityTransform{}},
	)
}

// SortOrder returns timestamp_ms ASC, sequence ASC (order ID 1).
func SortOrder() (table.SortOrder, error) {
	return table.NewSortOrder(1, []table.SortField{
		{SourceIDs: []int{FieldTimestampMs}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
		{SourceIDs: []int{FieldSequence}, Transform: iceberg.IdentityTransform{}, Direction: table.SortASC, NullOrder: table.NullsFirst},
	})
}
