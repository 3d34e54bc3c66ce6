package mongostore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/keda-demo/keda-demo/messaging/mongostore"
	"github.com/keda-demo/keda-demo/tests/testkit"
)

func open(t *testing.T) (*mongostore.Store, *testkit.FerretDB) {
	f := testkit.StartFerretDB(t)
	s, err := mongostore.Open(mongostore.Mongo{URI: f.URI(), Database: "keda_demo", Collection: "records"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	require.NoError(t, s.Ping(context.Background()))
	require.NoError(t, s.EnsureIndexes(context.Background()))
	return s, f
}

func TestUpsertIsIdempotent(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	rec := mongostore.Record{ID: "m1", Name: "n", Content: "c", CreatedAt: time.UnixMilli(1000).UTC(), ProcessedAt: time.UnixMilli(2000).UTC(), ProcessedBy: "p1"}
	inserted, err := s.Upsert(ctx, rec)
	require.NoError(t, err)
	require.True(t, inserted)
	// A redelivery processed by another pod keeps the first record as it was.
	again := rec
	again.ProcessedBy, again.ProcessedAt = "p2", time.UnixMilli(3000).UTC()
	inserted, err = s.Upsert(ctx, again)
	require.NoError(t, err)
	require.False(t, inserted)

	got, next, err := s.List(ctx, 10, nil)
	require.NoError(t, err)
	require.Nil(t, next)
	require.Equal(t, []mongostore.Record{rec}, got)
}

func TestWorkDoneIsKeptWithTheJobName(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	rec := mongostore.Record{ID: "m1", Name: "n", Content: "c", CreatedAt: time.UnixMilli(1000).UTC(), ProcessedAt: time.UnixMilli(2000).UTC(), ProcessedBy: "p1-x", Job: "p1"}
	_, err := s.Upsert(ctx, rec)
	require.NoError(t, err)
	got, _, err := s.List(ctx, 10, nil)
	require.NoError(t, err)
	require.Equal(t, []mongostore.Record{rec}, got, "the work still runs: no end time")

	require.NoError(t, s.WorkDone(ctx, "m1", time.UnixMilli(22000)))
	rec.WorkDoneAt = time.UnixMilli(22000).UTC()
	got, _, err = s.List(ctx, 10, nil)
	require.NoError(t, err)
	require.Equal(t, []mongostore.Record{rec}, got)
	require.ErrorContains(t, s.WorkDone(ctx, "nope", time.UnixMilli(1)), "no such record")
}

func TestListPagesNewestFirst(t *testing.T) {
	s, _ := open(t)
	ctx := context.Background()
	base := time.UnixMilli(1_700_000_000_000).UTC()
	// Records 0..6; 2, 3 and 4 share a creation time, so the id must break the tie.
	for i := range 7 {
		at := base.Add(time.Duration(i) * time.Second)
		if i >= 2 && i <= 4 {
			at = base.Add(2 * time.Second)
		}
		_, err := s.Upsert(ctx, mongostore.Record{ID: fmt.Sprintf("id-%d", i), Name: "n", Content: "c", CreatedAt: at, ProcessedAt: at})
		require.NoError(t, err)
	}
	var ids []string
	var after *mongostore.Cursor
	pages := 0
	for {
		recs, next, err := s.List(ctx, 2, after)
		require.NoError(t, err)
		pages++
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
		if next == nil {
			break
		}
		c, err := mongostore.ParseCursor(next.String())
		require.NoError(t, err)
		after = &c
	}
	require.Equal(t, []string{"id-6", "id-5", "id-4", "id-3", "id-2", "id-1", "id-0"}, ids)
	require.Equal(t, 4, pages)
}

func TestParseCursorRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "!!!", "bm9kb3Q", "YWJjLmlk" /* "abc.id" */, "MTIz" /* "123" */} {
		_, err := mongostore.ParseCursor(s)
		require.ErrorIs(t, err, mongostore.ErrBadCursor, s)
	}
}

func TestPingFailsWhenServerIsDown(t *testing.T) {
	s, f := open(t)
	f.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	require.Error(t, s.Ping(ctx))
	f.Start()
	require.Eventually(t, func() bool { return s.Ping(context.Background()) == nil }, 10*time.Second, 50*time.Millisecond)
}
