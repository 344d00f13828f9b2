package localcloud

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// createRunsTable makes a table shaped like the Refresh design's run records
// (docs/refresh.md §2): partition key runId (S), on demand.
func createRunsTable(t *testing.T, client *dynamodb.Client, name string, tags ...ddbtypes.Tag) string {
	t.Helper()
	out, err := client.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          ddbtypes.BillingModePayPerRequest,
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("runId"), KeyType: ddbtypes.KeyTypeHash}},
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("runId"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		Tags:                 tags,
	})
	if err != nil {
		t.Fatalf("creating table %s: %v", name, err)
	}
	return aws.ToString(out.TableDescription.TableArn)
}

func runKey(runID string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{"runId": &ddbtypes.AttributeValueMemberS{Value: runID}}
}

// TestGatewayDynamoDB: DynamoDB calls go through the gateway to moto with every strict
// check and the latency model on, are counted, and their errors reach the SDK as its
// typed errors: a failed condition is a *types.ConditionalCheckFailedException, of
// concurrent conditional writes to one item exactly one wins, and a fault with Match
// hits only the calls whose JSON body carries it.
func TestGatewayDynamoDB(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{Strict: DefaultStrictness(), Latency: AWSLatency(1)})
	ctx := context.Background()
	ddb := dynamodb.NewFromConfig(lc.cfg)
	const table = "Runs"
	createRunsTable(t, ddb, table)

	t.Run("a failed condition is ConditionalCheckFailedException", func(t *testing.T) {
		if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]ddbtypes.AttributeValue{
			"runId": &ddbtypes.AttributeValueMemberS{Value: "spring-demo"}, "state": &ddbtypes.AttributeValueMemberS{Value: "tearingDown"},
		}}); err != nil {
			t.Fatal(err)
		}
		_, err := ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: runKey("spring-demo"),
			UpdateExpression:          aws.String("SET lastGen = :one"),
			ConditionExpression:       aws.String("#s = :live"),
			ExpressionAttributeNames:  map[string]string{"#s": "state"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":live": &ddbtypes.AttributeValueMemberS{Value: "live"}, ":one": &ddbtypes.AttributeValueMemberN{Value: "1"}},
		})
		var failed *ddbtypes.ConditionalCheckFailedException
		if !errors.As(err, &failed) {
			t.Fatalf("UpdateItem on a condition that does not hold: %v (%T), want *types.ConditionalCheckFailedException", err, err)
		}
		got, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: runKey("spring-demo"), ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := got.Item["lastGen"]; ok {
			t.Errorf("the failed update wrote: %v", got.Item)
		}
	})

	// DynamoDB serialises the writes to an item; moto's threaded server does not by
	// itself (moto_launch.py's serialise_dynamodb): without it, about one round in
	// twenty of conditional UpdateItems had two winners here. Rounds, so that a race
	// has its chances.
	race := func(t *testing.T, write func(runID string, i int) error) {
		const rounds, n = 10, 20
		for r := range rounds {
			runID := fmt.Sprintf("race-%s-%d", t.Name(), r)
			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				winners []int
			)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := write(runID, i)
					var failed *ddbtypes.ConditionalCheckFailedException
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil:
						winners = append(winners, i)
					case !errors.As(err, &failed):
						t.Errorf("a loser's error is not ConditionalCheckFailedException: %v", err)
					}
				}()
			}
			wg.Wait()
			if len(winners) != 1 {
				t.Fatalf("round %d: %d winners %v, want exactly 1", r, len(winners), winners)
			}
			got, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: runKey(runID), ConsistentRead: aws.Bool(true)})
			if err != nil {
				t.Fatal(err)
			}
			if h, _ := got.Item["holder"].(*ddbtypes.AttributeValueMemberS); h == nil || h.Value != fmt.Sprint(winners[0]) {
				t.Errorf("round %d: the item's holder %v, want the winner %d", r, got.Item["holder"], winners[0])
			}
		}
	}
	t.Run("of 20 concurrent conditional PutItems one wins", func(t *testing.T) {
		race(t, func(runID string, i int) error {
			_, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table),
				Item: map[string]ddbtypes.AttributeValue{
					"runId":  &ddbtypes.AttributeValueMemberS{Value: runID},
					"holder": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprint(i)},
				},
				ConditionExpression: aws.String("attribute_not_exists(runId)"),
			})
			return err
		})
	})
	// The design's lock: a conditional UpdateItem of an existing item.
	t.Run("of 20 concurrent conditional UpdateItems one wins", func(t *testing.T) {
		race(t, func(runID string, i int) error {
			_, err := ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: runKey(runID),
				UpdateExpression:    aws.String("SET holder = :me"),
				ConditionExpression: aws.String("attribute_not_exists(holder)"),
				ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
					":me": &ddbtypes.AttributeValueMemberS{Value: fmt.Sprint(i)},
				},
			})
			return err
		})
	})

	t.Run("a fault with Match hits only the call whose body carries it", func(t *testing.T) {
		lc.gw.ClearFaults()
		defer lc.gw.ClearFaults()
		lc.gw.ResetCounts()
		lc.gw.AddFault(APIFault{Action: "dynamodb:UpdateItem", Code: "ProvisionedThroughputExceededException", Match: "run-a1"})
		update := func(runID string) error {
			_, err := ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: runKey(runID),
				UpdateExpression:          aws.String("SET lastGen = :one"),
				ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":one": &ddbtypes.AttributeValueMemberN{Value: "1"}},
			})
			return err
		}
		if err := update("run-b2"); err != nil {
			t.Errorf("a call of another run was faulted: %v", err)
		}
		for range 2 {
			var throttled *ddbtypes.ProvisionedThroughputExceededException
			if err := update("run-a1"); !errors.As(err, &throttled) {
				t.Errorf("the matching call: %v, want *types.ProvisionedThroughputExceededException every time", err)
			}
		}
		// Another action with the same body is not the fault's.
		if _, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: runKey("run-a1")}); err != nil {
			t.Errorf("GetItem of the matching run: %v", err)
		}
		if c := lc.gw.Counts(); c["dynamodb:UpdateItem"] != 3 || c["dynamodb:GetItem"] != 1 {
			t.Errorf("counts %v, want 3 UpdateItem (faulted ones included) and 1 GetItem", c)
		}
	})
}

// TestJSONCarries: a JSON body carries a match as sent or once unescaped.
func TestJSONCarries(t *testing.T) {
	cases := []struct {
		body, match string
		want        bool
	}{
		{`{"TableName":"Runs","Key":{"runId":{"S":"run-a1"}}}`, "run-a1", true},
		{`{"TableName":"Runs","Key":{"runId":{"S":"run-b2"}}}`, "run-a1", false},
		{`{"input":"{\"runId\":\"run-a1\"}"}`, `"runId":"run-a1"`, true},
		{`{"name":"a\u003cb"}`, "a<b", true},
		{`{"name":"a\/b"}`, "a/b", true},
		{`not json run-a1`, "run-a1", true},
		{`not json`, "run-a1", false},
		{``, "run-a1", false},
	}
	for _, tc := range cases {
		if got := jsonCarries([]byte(tc.body), tc.match); got != tc.want {
			t.Errorf("jsonCarries(%s, %q) = %v, want %v", tc.body, tc.match, got, tc.want)
		}
	}
	// Query calls: as before, one of the parameters.
	q := apiCall{Protocol: "query", Form: map[string][]string{"Name": {"amifleet-run-a1"}}}
	if !callCarries(q, "run-a1") || callCarries(q, "run-b2") || !callCarries(q, "") {
		t.Error("query-protocol Match changed")
	}
	if callCarries(apiCall{Protocol: "rest-json", Body: []byte("run-a1")}, "run-a1") {
		t.Error("a REST call carried a match")
	}
}
