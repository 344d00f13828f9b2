package stages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/amifleet/amifleet/internal/pipeline"
)

// The runs table: one item per live run (pipeline.RunRecord), its configuration and
// the lock that lets one refresh at a time hold it. Every write that another writer
// could race is conditional, and every read that decides something is consistent.
//
//	runId      S   partition key
//	state      S   live | tearingDown
//	serving    N   the generation that serves
//	lastGen    N   the highest generation ever allocated
//	document   S   the serving generation's document (JSON)
//	lock       M   {holder S, since S (RFC 3339), building N}; absent when free
//	updatedBy  S   the execution (token seed or ARN) that last wrote it

// RunsAPI is the part of the DynamoDB API that the runs table needs.
type RunsAPI interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// errNoRunsTable is the failure of a function that needs the runs table in a
// deployment that gave it none.
var errNoRunsTable = &pipeline.StageError{Err: fmt.Errorf(
	"no runs table: %s is not set (deploy the stack again: the refresh needs its Runs table)", pipeline.EnvRunsTable)}

// isConditionFailed reports whether a conditional write lost.
func isConditionFailed(err error) bool {
	var c *ddbtypes.ConditionalCheckFailedException
	return errors.As(err, &c) || ErrorCode(err) == "ConditionalCheckFailedException"
}

func runKey(runID string) map[string]ddbtypes.AttributeValue {
	return map[string]ddbtypes.AttributeValue{"runId": &ddbtypes.AttributeValueMemberS{Value: runID}}
}

func attrS(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
func attrN(n int) ddbtypes.AttributeValue {
	return &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(n)}
}

// storedDocument is what the record keeps of a document: its config, placement,
// estimate and resources, without the polls and errors of the execution that wrote it.
func storedDocument(doc pipeline.Document) (string, error) {
	keep := pipeline.Document{RunID: doc.RunID, Config: doc.Config, Generation: doc.Gen(),
		Placement: doc.Placement, Estimate: doc.Estimate, Resources: doc.Resources}
	keep.Resources.Verify = nil
	b, err := json.Marshal(keep)
	return string(b), err
}

// getRun reads a run's record, consistently; nil when it has none.
func (s *Stages) getRun(ctx context.Context, runID string) (*pipeline.RunRecord, error) {
	if s.RunsTable == "" {
		return nil, errNoRunsTable
	}
	return ReadRun(ctx, s.Runs, s.RunsTable, runID)
}

// RunReader is what reading a run's record needs of DynamoDB.
type RunReader interface {
	GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

// ReadRun reads a run's record from table, consistently; nil when it has none. The
// functions and the CLI (what serves now) read it the same way.
func ReadRun(ctx context.Context, runs RunReader, table, runID string) (*pipeline.RunRecord, error) {
	out, err := runs.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(table), Key: runKey(runID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, fmt.Errorf("read the record of run %s: %w", runID, err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return decodeRun(out.Item)
}

func decodeRun(item map[string]ddbtypes.AttributeValue) (*pipeline.RunRecord, error) {
	str := func(m map[string]ddbtypes.AttributeValue, k string) string {
		if v, ok := m[k].(*ddbtypes.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	num := func(m map[string]ddbtypes.AttributeValue, k string) int {
		if v, ok := m[k].(*ddbtypes.AttributeValueMemberN); ok {
			n, _ := strconv.Atoi(v.Value)
			return n
		}
		return 0
	}
	r := &pipeline.RunRecord{RunID: str(item, "runId"), State: str(item, "state"), Serving: num(item, "serving"),
		LastGen: num(item, "lastGen"), UpdatedBy: str(item, "updatedBy")}
	if doc := str(item, "document"); doc != "" {
		if err := json.Unmarshal([]byte(doc), &r.Document); err != nil {
			return nil, &pipeline.StageError{Err: fmt.Errorf("the record of run %s holds a broken document: %w", r.RunID, err)}
		}
	}
	if l, ok := item["lock"].(*ddbtypes.AttributeValueMemberM); ok {
		since, _ := time.Parse(time.RFC3339, str(l.Value, "since"))
		r.Lock = &pipeline.RunLock{Holder: str(l.Value, "holder"), Since: since, Building: num(l.Value, "building")}
	}
	return r, nil
}

// putRun writes a new run's record: once, or again by the same writer (a retried
// RecordRun), never over another run's.
func (s *Stages) putRun(ctx context.Context, doc pipeline.Document, writer string) error {
	if s.RunsTable == "" {
		return errNoRunsTable
	}
	body, err := storedDocument(doc)
	if err != nil {
		return err
	}
	_, err = s.Runs.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.RunsTable),
		Item: map[string]ddbtypes.AttributeValue{
			"runId": attrS(doc.RunID), "state": attrS(pipeline.RunLive), "serving": attrN(doc.Gen()),
			"lastGen": attrN(doc.Gen()), "document": attrS(body), "updatedBy": attrS(writer),
		},
		ConditionExpression:       aws.String("attribute_not_exists(runId) OR updatedBy = :me"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":me": attrS(writer)},
	})
	if isConditionFailed(err) {
		return &pipeline.StageError{Err: fmt.Errorf("run %s already has a live record, written by another execution: "+
			"a run id serves one fleet at a time (tear the other down first)", doc.RunID)}
	}
	if err != nil {
		return fmt.Errorf("write the record of run %s: %w", doc.RunID, err)
	}
	return nil
}

// lockRun takes the run for holder, which builds the generation after rec.LastGen:
// the record must still be live, at the LastGen read, and unlocked, or locked by
// holder itself (a retry) or by stale (a holder that no longer runs). It reports
// false when another writer won.
func (s *Stages) lockRun(ctx context.Context, rec *pipeline.RunRecord, holder, stale string, now time.Time) (bool, error) {
	cond := "#state = :live AND lastGen = :last AND (attribute_not_exists(#lock) OR #lock.holder = :me"
	values := map[string]ddbtypes.AttributeValue{
		":live": attrS(pipeline.RunLive), ":last": attrN(rec.LastGen), ":me": attrS(holder), ":next": attrN(rec.LastGen + 1),
		":lock": &ddbtypes.AttributeValueMemberM{Value: map[string]ddbtypes.AttributeValue{
			"holder": attrS(holder), "since": attrS(now.UTC().Format(time.RFC3339)), "building": attrN(rec.LastGen + 1)}},
	}
	if stale != "" {
		cond += " OR #lock.holder = :stale"
		values[":stale"] = attrS(stale)
	}
	cond += ")"
	_, err := s.Runs.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.RunsTable), Key: runKey(rec.RunID),
		UpdateExpression:          aws.String("SET #lock = :lock, lastGen = :next, updatedBy = :me"),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeNames:  map[string]string{"#state": "state", "#lock": "lock"},
		ExpressionAttributeValues: values,
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lock run %s: %w", rec.RunID, err)
	}
	return true, nil
}

// commitRun makes doc's generation the one that serves, if holder still holds the
// run for it. It reports false when it does not.
func (s *Stages) commitRun(ctx context.Context, doc pipeline.Document, holder string) (bool, error) {
	body, err := storedDocument(doc)
	if err != nil {
		return false, err
	}
	_, err = s.Runs.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.RunsTable), Key: runKey(doc.RunID),
		UpdateExpression:          aws.String("SET serving = :gen, document = :doc, updatedBy = :me"),
		ConditionExpression:       aws.String("#lock.holder = :me AND #lock.building = :gen"),
		ExpressionAttributeNames:  map[string]string{"#lock": "lock"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":gen": attrN(doc.Gen()), ":doc": attrS(body), ":me": attrS(holder)},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("commit generation %d of run %s: %w", doc.Gen(), doc.RunID, err)
	}
	return true, nil
}

// unlockRun frees the run if holder holds it; a lock held by another (or none) is
// left as it is.
func (s *Stages) unlockRun(ctx context.Context, runID, holder string) error {
	_, err := s.Runs.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.RunsTable), Key: runKey(runID),
		UpdateExpression:          aws.String("REMOVE #lock"),
		ConditionExpression:       aws.String("#lock.holder = :me"),
		ExpressionAttributeNames:  map[string]string{"#lock": "lock"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":me": attrS(holder)},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("unlock run %s: %w", runID, err)
	}
	return nil
}

// endRun marks a run's record as being torn down (so that no refresh starts), or,
// with remove, deletes it. A run without a record, or a deployment without the
// table, has nothing to do.
func (s *Stages) endRun(ctx context.Context, runID string, remove bool) error {
	if s.RunsTable == "" || s.Runs == nil {
		return nil
	}
	if remove {
		if _, err := s.Runs.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.RunsTable), Key: runKey(runID)}); err != nil {
			return fmt.Errorf("delete the record of run %s: %w", runID, err)
		}
		return nil
	}
	_, err := s.Runs.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.RunsTable), Key: runKey(runID),
		UpdateExpression:          aws.String("SET #state = :td"),
		ConditionExpression:       aws.String("attribute_exists(runId)"),
		ExpressionAttributeNames:  map[string]string{"#state": "state"},
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":td": attrS(pipeline.RunTearingDown)},
	})
	if err != nil && !isConditionFailed(err) {
		return fmt.Errorf("mark run %s as torn down: %w", runID, err)
	}
	return nil
}
