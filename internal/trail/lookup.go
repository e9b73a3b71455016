package trail

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudtrail"
	cttypes "github.com/aws/aws-sdk-go-v2/service/cloudtrail/types"
)

// LookupEventsAPI is what an online diagnosis calls on CloudTrail.
type LookupEventsAPI interface {
	LookupEvents(context.Context, *cloudtrail.LookupEventsInput, ...func(*cloudtrail.Options)) (*cloudtrail.LookupEventsOutput, error)
}

// lookupInterval keeps LookupEvents under CloudTrail's 2 calls per second.
const lookupInterval = 500 * time.Millisecond

// Lookup reads the account's KMS events between since and until (one
// lookup attribute, EventSource, as LookupEvents allows) and calls fn for
// each denial on a launch path.
func Lookup(ctx context.Context, c LookupEventsAPI, since, until time.Time, fn func(Denial) error) error {
	pages := cloudtrail.NewLookupEventsPaginator(c, &cloudtrail.LookupEventsInput{
		LookupAttributes: []cttypes.LookupAttribute{{AttributeKey: cttypes.LookupAttributeKeyEventSource, AttributeValue: aws.String("kms.amazonaws.com")}},
		StartTime:        aws.Time(since), EndTime: aws.Time(until),
	})
	var last time.Time
	for pages.HasMorePages() {
		if wait := lookupInterval - time.Since(last); !last.IsZero() && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		last = time.Now()
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("look up KMS events: %w", err)
		}
		for _, e := range page.Events {
			d, ok, err := ParseRecord([]byte(aws.ToString(e.CloudTrailEvent)))
			if err != nil {
				return fmt.Errorf("event %s: %w", aws.ToString(e.EventId), err)
			}
			if ok {
				if err := fn(d); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
