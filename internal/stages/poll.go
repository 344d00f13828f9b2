package stages

import "github.com/amifleet/amifleet/internal/pipeline"

// poll is one check of the named wait (pipeline.Waits): it numbers this attempt one
// after the last one in doc, lets check fill in the answer, and returns doc with
// $.polls.<key> set, the wait before the next check (config.poll.WaitAfter)
// included. check may record more in its copy of the document (CheckImageAvailable
// records the snapshots); the caller's document is left as it was.
func poll(doc pipeline.Document, wait string, check func(*pipeline.Document, *pipeline.PollResult) error) (pipeline.Document, error) {
	polls := pipeline.Polls{}
	if doc.Polls != nil {
		polls = *doc.Polls // a copy: the caller's document stays as it was
	}
	answer := &pipeline.PollResult{Attempts: attemptAfter(polls.Of(wait))}
	if err := check(&doc, answer); err != nil {
		return doc, err
	}
	answer.WaitSeconds = doc.Config.Poll.WaitAfter(wait, answer.Attempts)
	polls.Set(wait, answer)
	doc.Polls = &polls
	return doc, nil
}

// attemptAfter numbers this poll: one more than the last.
func attemptAfter(prev *pipeline.PollResult) int {
	if prev == nil {
		return 1
	}
	return prev.Attempts + 1
}
