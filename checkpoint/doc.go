// Package checkpoint keeps the shard leases and checkpoints of a Kinesis consumer fleet.
//
// A lease gives one worker the right to process one shard; its checkpoint records how far that
// worker got, so whoever holds the lease next continues from there. The Store interface covers
// what a KCL-style fleet does with leases, and three stores implement it with the same rules:
//
//   - DynamoDBStore, for a fleet of any size, in a table with the Java KCL's lease schema, so a
//     team moving from the KCL keeps its checkpoints, and a table Shardline wrote stays
//     readable by the KCL.
//   - FileStore, for a single process on one node, durable across crashes.
//   - MemoryStore, for tests and for consumers that may start over after a restart.
//
// On top of a Store, a LeaseHolder carries one worker's hold on one lease, and a Checkpointer
// is the handle an application's record processor checkpoints through.
//
// # Expiry by counter, not by clock
//
// Every write that asserts ownership (take, renew, checkpoint, evict) increments the lease's
// counter, and is conditional on the counter the writer last saw. A worker therefore never
// compares its clock with another machine's: it notes when it last saw each lease's counter
// change, on its own monotonic clock, and considers a lease expired when the counter has not
// moved for the failover time. Taking an expired lease is a conditional write on the counter
// (and owner) it saw; if the owner renewed in the meantime, the counter differs and the take
// fails with ErrLeaseLost. Of any number of workers acting on one view of a lease, at most one
// succeeds, and a worker that lost a lease cannot write to it again: its next renewal or
// checkpoint names a stale counter and fails with ErrLeaseLost, so it cannot overwrite the new
// owner's checkpoint.
//
// # Who writes what
//
//   - The shard synchronizer creates a lease per shard (CreateLeaseIfNotExists) with no owner,
//     counter 0, the start position as checkpoint (TRIM_HORIZON, LATEST or AT_TIMESTAMP), the
//     parent shard IDs and the hash key range.
//   - A worker takes unassigned or expired leases (TakeLease), then renews each held lease
//     well within the failover time (RenewLease), reporting the shard's throughput.
//   - The application checkpoints through its Checkpointer (UpdateCheckpoint), which also
//     resets the owner-switch count and clears a pending (two-phase) checkpoint.
//   - At the end of a shard the owner checkpoints SHARD_END and records the child shards
//     (UpdateChildShards); once the children started, the parent's lease is deleted
//     (DeleteLease).
//   - A worker shutting down evicts its leases (EvictLease), which removes the owner and
//     increments the counter so other workers can take them at once instead of waiting.
//
// # Graceful handoff (KCL 3.x)
//
// To move a lease without losing the records in flight, a coordinator calls InitiateHandoff:
// it sets checkpointOwner to the current owner and leaseOwner to the next one, and leaves the
// counter alone. The current owner, the "actual owner" while checkpointOwner is set, keeps
// renewing and may still checkpoint; its next renewal returns a lease whose HandoffRequested
// is true. It then finishes its in-flight records, checkpoints and evicts, which removes only
// checkpointOwner and increments the counter, leaving the next owner in place to take it
// without waiting for expiry. If the current owner dies instead, the lease expires and is
// taken as usual; taking clears checkpointOwner.
//
// # The lease table
//
// One item per lease, hash key leaseKey, no sort key. The names and types are the Java KCL's
// (DynamoDBLeaseSerializer and DynamoDBMultiStreamLeaseSerializer of KCL 2.x and 3.x):
//
//	attribute                           type  meaning
//	leaseKey                            S     hash key: the shard ID; "streamIdentifier:shardId" in multi-stream mode
//	leaseOwner                          S     worker the lease is assigned to; absent when unassigned
//	leaseCounter                        N     incremented by every ownership write; the fencing and expiry signal
//	checkpoint                          S     last processed sequence number, or TRIM_HORIZON, LATEST, AT_TIMESTAMP, SHARD_END
//	checkpointSubSequenceNumber         N     user record inside a KPL aggregate at the checkpoint (0 otherwise)
//	pendingCheckpoint                   S     prepared, uncommitted checkpoint (two-phase checkpoint); absent when none
//	pendingCheckpointSubSequenceNumber  N     its subsequence number
//	pendingCheckpointState              B     application state stored with the prepared checkpoint
//	ownerSwitchesSinceCheckpoint        N     how often the lease changed hands since the last checkpoint
//	parentShardId                       SS    parent shard IDs (singular name, string set); absent for a shard without parents
//	childShardIds                       SS    child shard IDs, written when the shard reaches its end
//	startingHashKey, endingHashKey      S     the shard's hash key range, decimal
//	checkpointOwner                     S     KCL 3.x: worker finishing a graceful handoff; absent otherwise
//	throughputKBps                      N     KCL 3.x: shard throughput measured by the owner, for load balancing
//	streamName, shardId                 S     multi-stream mode: serialized stream identifier and shard ID
//	entityType                          S     newer KCL releases: "LEASE", or another kind of row sharing the table
//
// Shardline reads and writes the same attributes with the same types, leaves out optional ones
// rather than writing them empty (DynamoDB rejects empty sets, and the KCL reads a missing owner
// as unassigned), and changes existing items only with UpdateItem naming the attributes it
// changes, so attributes it does not know survive. Rows whose entityType is not LEASE are not
// leases and are skipped. EnsureTable also adds the KCL 3.x's global secondary index,
// LeaseOwnerToLeaseKeyIndex (hash leaseOwner, range leaseKey, keys only), the way the KCL 3.x
// adds it to a table without one, unless DisableOwnerIndex is set;
// DynamoDBStore.ListLeaseKeysForOwner queries it for a worker's leases, and scans while the
// table has no ACTIVE index.
//
// A table created by EnsureTable uses on-demand (PAY_PER_REQUEST) billing by default.
package checkpoint
