// Package mongostore keeps the processed records in MongoDB: the processor upserts them, the app lists them.
package mongostore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Record is one processed message. Its id is the message id, so a redelivered message never makes
// a second record.
type Record struct {
	ID          string    `bson:"_id" json:"id"`
	Name        string    `bson:"name" json:"name"`
	Content     string    `bson:"content" json:"content"`
	CreatedAt   time.Time `bson:"createdAt" json:"createdAt"`
	ProcessedAt time.Time `bson:"processedAt" json:"processedAt"`
	ProcessedBy string    `bson:"processedBy" json:"processedBy"`
	// Job is the Kubernetes Job that stored the record; it outlives the Job, which KEDA deletes.
	Job string `bson:"job,omitempty" json:"job,omitempty"`
	// WorkDoneAt is when the processor's work on the record ended; zero while it runs.
	WorkDoneAt time.Time `bson:"workDoneAt,omitempty" json:"workDoneAt,omitzero"`
}

// Cursor marks where the next page starts: records strictly older than (CreatedAt, ID).
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// ErrBadCursor is returned by ParseCursor for a cursor this package did not make.
var ErrBadCursor = errors.New("invalid cursor")

// String encodes the cursor for a URL.
func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixMilli(), 10) + "." + c.ID))
}

// ParseCursor decodes a cursor made by Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	ms, id, ok := strings.Cut(string(raw), ".")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil || id == "" {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{CreatedAt: time.UnixMilli(n).UTC(), ID: id}, nil
}

// Store is a MongoDB collection of records.
type Store struct {
	client *mongo.Client
	coll   *mongo.Collection
}

// Open prepares a client; it does not wait for the server (see Ping).
func Open(cfg Mongo) (*Store, error) {
	opts := options.Client().ApplyURI(cfg.URI).
		SetServerSelectionTimeout(5 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetAppName("keda-demo")
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongodb client for %s: %w", cfg.Redacted(), err)
	}
	return &Store{client: client, coll: client.Database(cfg.Database).Collection(cfg.Collection)}, nil
}

// Close disconnects.
func (s *Store) Close(ctx context.Context) error { return s.client.Disconnect(ctx) }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("mongodb ping: %w", err)
	}
	return nil
}

// EnsureIndexes creates the index GET /data pages on. Idempotent.
func (s *Store) EnsureIndexes(ctx context.Context) error {
	_, err := s.coll.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}},
		Options: options.Index().SetName("createdAt_-1__id_-1"),
	})
	if err != nil {
		return fmt.Errorf("create index: %w", err)
	}
	return nil
}

// Upsert stores rec unless a record with its id exists; it reports whether it inserted.
func (s *Store) Upsert(ctx context.Context, rec Record) (bool, error) {
	res, err := s.coll.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: rec.ID}},
		bson.D{{Key: "$setOnInsert", Value: bson.D{
			{Key: "name", Value: rec.Name},
			{Key: "content", Value: rec.Content},
			{Key: "createdAt", Value: rec.CreatedAt},
			{Key: "processedAt", Value: rec.ProcessedAt},
			{Key: "processedBy", Value: rec.ProcessedBy},
			{Key: "job", Value: rec.Job},
		}}},
		options.UpdateOne().SetUpsert(true))
	if err != nil {
		return false, fmt.Errorf("upsert record %q: %w", rec.ID, err)
	}
	return res.UpsertedCount == 1, nil
}

// WorkDone records when the work on record id ended. A redelivery's work moves the time on.
func (s *Store) WorkDone(ctx context.Context, id string, at time.Time) error {
	res, err := s.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "workDoneAt", Value: at.UTC()}}}})
	if err != nil {
		return fmt.Errorf("mark work done on record %q: %w", id, err)
	}
	if res.MatchedCount == 0 {
		return fmt.Errorf("mark work done on record %q: no such record", id)
	}
	return nil
}

// List returns up to limit records, newest first, starting after the cursor when one is given, and
// the cursor of the next page when there is one.
func (s *Store) List(ctx context.Context, limit int, after *Cursor) ([]Record, *Cursor, error) {
	filter := bson.D{}
	if after != nil {
		filter = bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: after.CreatedAt}}}},
			bson.D{{Key: "createdAt", Value: after.CreatedAt}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: after.ID}}}},
		}}}
	}
	opts := options.Find().
		SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).
		SetLimit(int64(limit) + 1) // one more tells whether a next page exists
	cur, err := s.coll.Find(ctx, filter, opts)
	if err != nil {
		return nil, nil, fmt.Errorf("list records: %w", err)
	}
	records := make([]Record, 0, limit)
	if err := cur.All(ctx, &records); err != nil {
		return nil, nil, fmt.Errorf("read records: %w", err)
	}
	for i := range records {
		records[i].CreatedAt = records[i].CreatedAt.UTC()
		records[i].ProcessedAt = records[i].ProcessedAt.UTC()
		if !records[i].WorkDoneAt.IsZero() {
			records[i].WorkDoneAt = records[i].WorkDoneAt.UTC()
		}
	}
	if len(records) <= limit {
		return records, nil, nil
	}
	records = records[:limit]
	last := records[limit-1]
	return records, &Cursor{CreatedAt: last.CreatedAt, ID: last.ID}, nil
}
