package localcloud

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// createRunsTable makes a table shaped like the Refresh design's run records
// (docs/refresh.md, "The run record"): partition key runId (S), on demand.
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

// TestCloudFormationRunsTable: moto's CloudFormation, as the local cloud deploys the
// stack (CreateStack, then UpdateStack for a redeploy), creates the Runs table as the
// CDK synthesizes it (no TableName, on demand, runId HASH, DeletionPolicy Delete),
// resolves its Ref and Arn, keeps it and its items across an update that leaves it as
// it was, and deletes it with the stack.
func TestCloudFormationRunsTable(t *testing.T) {
	lc := startLocalCloud(t, GatewayOptions{})
	ctx := context.Background()
	table := `"Runs": {"Type": "AWS::DynamoDB::Table",
	      "Properties": {
	        "AttributeDefinitions": [{"AttributeName": "runId", "AttributeType": "S"}],
	        "BillingMode": "PAY_PER_REQUEST",
	        "KeySchema": [{"AttributeName": "runId", "KeyType": "HASH"}],
	        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": false}},
	      "UpdateReplacePolicy": "Delete", "DeletionPolicy": "Delete"}`
	template := func(extraOutput string) string {
		return `{"Resources": {` + table + `},
	  "Outputs": {"RunsTableName": {"Value": {"Ref": "Runs"}}, "RunsTableArn": {"Value": {"Fn::GetAtt": ["Runs", "Arn"]}}` + extraOutput + `}}`
	}
	cfn := cloudformation.NewFromConfig(lc.cfg)
	ddb := dynamodb.NewFromConfig(lc.cfg)
	const stack = "runs-table-test"
	if _, err := cfn.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String(stack), TemplateBody: aws.String(template(""))}); err != nil {
		t.Fatal(err)
	}
	outputs := func() map[string]string {
		out, err := cfn.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, o := range out.Stacks[0].Outputs {
			m[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
		}
		return m
	}
	o := outputs()
	name := o["RunsTableName"]
	desc, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatalf("the stack's table %q (outputs %v): %v", name, o, err)
	}
	tb := desc.Table
	t.Logf("table %s, %s", name, aws.ToString(tb.TableArn))
	if tb.BillingModeSummary == nil || tb.BillingModeSummary.BillingMode != ddbtypes.BillingModePayPerRequest {
		t.Errorf("billing mode %+v, want PAY_PER_REQUEST", tb.BillingModeSummary)
	}
	if len(tb.KeySchema) != 1 || aws.ToString(tb.KeySchema[0].AttributeName) != "runId" || tb.KeySchema[0].KeyType != ddbtypes.KeyTypeHash {
		t.Errorf("key schema %+v, want runId HASH", tb.KeySchema)
	}
	if len(tb.AttributeDefinitions) != 1 || tb.AttributeDefinitions[0].AttributeType != ddbtypes.ScalarAttributeTypeS {
		t.Errorf("attribute definitions %+v, want runId S", tb.AttributeDefinitions)
	}
	if o["RunsTableArn"] != aws.ToString(tb.TableArn) || o["RunsTableArn"] != "arn:aws:dynamodb:"+testRegion+":"+testAccount+":table/"+name {
		t.Errorf("Fn::GetAtt Arn %q, the table's ARN %q", o["RunsTableArn"], aws.ToString(tb.TableArn))
	}
	if _, err := ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(name), Item: runKey("spring-demo")}); err != nil {
		t.Fatal(err)
	}

	// A redeploy that changes something else keeps the table and its records.
	if _, err := cfn.UpdateStack(ctx, &cloudformation.UpdateStackInput{StackName: aws.String(stack),
		TemplateBody: aws.String(template(`, "Other": {"Value": "x"}`))}); err != nil {
		t.Fatal(err)
	}
	if o := outputs(); o["RunsTableName"] != name || o["Other"] != "x" {
		t.Errorf("outputs after the update %v", o)
	}
	got, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(name), Key: runKey("spring-demo"), ConsistentRead: aws.Bool(true)})
	if err != nil || got.Item == nil {
		t.Errorf("the record after the update: %v (%v)", got, err)
	}

	if _, err := cfn.DeleteStack(ctx, &cloudformation.DeleteStackInput{StackName: aws.String(stack)}); err != nil {
		t.Fatal(err)
	}
	var gone *ddbtypes.ResourceNotFoundException
	if _, err := ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}); !errors.As(err, &gone) {
		t.Errorf("the table after DeleteStack: %v, want ResourceNotFoundException", err)
	}
}
