package awsim

import (
	"context"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// BenchmarkDescribeImages: DescribeImages through the Go SDK from 8
// concurrent clients on loopback (goal: ≥ 2,000 requests/s; moto serves
// about 250 here).
func BenchmarkDescribeImages(b *testing.B) {
	s := New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, err := s.Start(ctx, "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	_, amiID := bakeImageB(b, url)
	cfg := config(url, target)
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	client := ec2.NewFromConfig(cfg)
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0))) // 8 clients in all
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{amiID}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}
