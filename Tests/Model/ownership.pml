/*
 * Parley's channel ownership protocol (DESIGN §3, OwnershipStateMachine, the append and
 * trim scripts, the fenced store), for SPIN. `cluster/verify` checks it exhaustively.
 *
 * Bounds: N nodes (3), M client messages (3, from two clients), time 0..TMAX, STEPS protocol steps in all,
 * CRASHES node crashes in all. Redis is one atomic store (the lease with its TTL, the fence
 * counter, the log of {seq}-0 entries, the dedupe hash); PostgreSQL a second one (rows by
 * seq, the channel's owner fence). Time is global and advanced by its own process: a node
 * that is not scheduled while the clock runs is a paused node (SIGSTOP, GC, a slow network).
 * Requests and replies are separate steps, so a request may be processed long after it was
 * sent; replies may be lost.
 *
 * Correspondence with OwnershipStateMachine (Sources/ParleyCore/Cluster/OwnershipStateMachine.swift):
 *
 *   Swift state / event                 | model
 *   ------------------------------------+-------------------------------------------------
 *   .idle, .released, .lost             | st = IDLE, RELEASED, LOST
 *   want → .acquire                     | acquire step (sent at `now`)
 *   .acquiring(sentAt)                  | (the acquire request is one atomic Redis step)
 *   leaseGranted(fence, sentAt)         | granted: proven = sentAt + TTL; claim + recover
 *   leaseRefused                        | the acquire step finds the lease held
 *   .owned(Lease)                       | st = OWNED (myFence, proven)
 *   canWrite(now)                       | CANWRITE: now < proven - MARGIN
 *   tick → .renew(fence)                | renewSend (renewAt = now), then renewRedis
 *   renewSucceeded(sentAt)              | renewReply: proven = renewAt + TTL
 *   renewFailed / renewRefused          | reply lost / refused: proven unchanged
 *   tick past provenUntil - margin      | expire step: st = LOST (stop the actor)
 *   ringChanged(preferred: false)       | handOff: st = HANDING (stop accepting)
 *   flushCompleted → .publishHandoff,   | release step: Redis DEL if holder == me,
 *     .release(fence), .stopActor       |   st = RELEASED
 *   flushFailed                         | flush refused (stale fence): st = LOST
 *   giveUp                              | release from OWNED
 *   (crash: the process dies)           | crash: local state gone, st = IDLE
 *   the actor's append                  | appendSend (CANWRITE), appendRedis (holder check)
 *   MessageBuffer write + trim          | flush (fenced insert), trim (persisted prefix)
 *   ChannelServer.recover on takeover   | recover inside the granted step
 *
 * Invariants: (1) every accepted append carries a fence no lower than any accepted before,
 * and one fence belongs to one node; (2) an acknowledged message is in the log or in
 * PostgreSQL in every reachable state; (3) PostgreSQL never holds a message twice and, once
 * a last owner recovered the log (the end state), holds every acknowledged message with
 * seqs 1..n gap-free; (4) a resend gets the message's first seq.
 * Known bugs, each must produce a counter-example: -DBUG_TRIM (trim through the log's end,
 * not the persisted prefix), -DBUG_RENEW (renew without comparing the holder).
 */

#define N 3
#define M 3
#define SEQS 4          /* seqs 1..SEQS-1 can exist */
#define TTL 3
#define MARGIN 1
#ifndef TMAX
#define TMAX 7
#endif
#ifndef STEPS
#define STEPS 10
#endif
#ifndef CRASHES
#define CRASHES 1
#endif

#define IDLE 0
#define OWNED 1
#define HANDING 2
#define RELEASED 3
#define LOST 4

byte now;
/* Redis */
byte holder;            /* 0: none */
byte expiry;            /* the lease key lives while now < expiry */
byte fence;             /* the fence counter */
byte logMsg[SEQS];      /* 0: no entry (never written, or trimmed) */
byte logFence[SEQS];
byte logLast;
byte dedupe[M + 1];     /* message → its seq (kept longer than any entry: the dedupe hash) */
/* PostgreSQL */
byte pgMsg[SEQS];
byte ownerFence;
/* ghosts */
bool acked[M + 1];
byte lastAppendFence;
byte fenceNode[8];
byte crashes;
byte steps = STEPS;     /* protocol steps left, for all nodes together */
byte finished;

#define LEASE_FREE (holder == 0 || now >= expiry)
#define CANWRITE (now + MARGIN < proven)
#define inLog(m) (dedupe[m] != 0 && logMsg[dedupe[m]] == m)
#define inPG(m) (dedupe[m] != 0 && pgMsg[dedupe[m]] == m)
#define durable(m) (!acked[m] || inLog(m) || inPG(m))
/* (2), checked after every step that changes the log, PostgreSQL or what was acknowledged
 * (no other step can break it, so it holds in every reachable state). */
#define CHECK_DURABLE assert(durable(1) && durable(2) && durable(3))

/* Writes every log entry PostgreSQL lacks, under `f`; refused whole when a newer owner
 * claimed the channel. */
inline copyLogToPG(f, ok) {
    if
    :: f >= ownerFence ->
        i = 1;
        do
        :: i < SEQS -> if :: logMsg[i] != 0 && pgMsg[i] == 0 -> pgMsg[i] = logMsg[i] :: else -> skip fi; i++
        :: else -> break
        od;
        ok = true
    :: else -> ok = false
    fi;
    i = 0
}

proctype node(byte me) {
    byte st = IDLE, myFence, proven, renewAt, pending, i, j;
    bool renewing, renewOk, ok;
    do
    :: atomic { steps > 0 && (st == IDLE || st == RELEASED || st == LOST) ->
        /* want: acquire (SET NX PX + INCR), then claim and recover the log's tail */
            steps--;
            if
            :: LEASE_FREE ->
                fence++; holder = me; expiry = now + TTL;
                myFence = fence; proven = now + TTL; renewing = false; pending = 0;
                if
                :: myFence > ownerFence -> ownerFence = myFence; copyLogToPG(myFence, ok); ok = false; st = OWNED;
                    printf("t=%d node %d takes the lease (fence %d) and recovers the log into PostgreSQL\n", now, me, myFence)
                :: else -> st = LOST
                fi
            :: else -> skip   /* refused */
            fi
        }
    :: atomic { steps > 0 && st == OWNED && CANWRITE && pending == 0 ->
        /* a client's message (or its resend) reaches the actor; the append is sent */
            steps--;
            /* two clients: one sends messages 1 and 2 in order, one at a time (the first not
             * acknowledged), the other message 3 */
            if
            :: !acked[1] -> pending = 1
            :: acked[1] && !acked[2] -> pending = 2
            :: !acked[3] -> pending = 3
            :: else -> skip
            fi;
            if :: pending != 0 -> printf("t=%d node %d sends the append of message %d\n", now, me, pending) :: else -> skip fi
        }
    :: pending != 0 ->
        /* the append script runs (maybe much later): holder check, dedupe, XADD */
        atomic {
            if
            :: holder == me && now < expiry ->
                if
                :: dedupe[pending] != 0 -> j = dedupe[pending]
                :: else ->
                    assert(logLast + 1 < SEQS);
                    logLast++; j = logLast;
                    logMsg[j] = pending; logFence[j] = myFence; dedupe[pending] = j;
                    assert(myFence >= lastAppendFence);                         /* (1) */
                    assert(fenceNode[myFence] == 0 || fenceNode[myFence] == me); /* (1) */
                    lastAppendFence = myFence; fenceNode[myFence] = me
                fi;
                printf("t=%d Redis appends message %d for node %d at seq %d (fence %d)\n", now, pending, me, j, myFence);
                if
                :: acked[pending] = true; printf("      the client gets its acknowledgement\n")
                :: skip                     /* lost: the client will resend */
                fi
            :: else -> printf("t=%d Redis refuses node %d's append: not the holder\n", now, me)
            fi;
            pending = 0; j = 0;
            CHECK_DURABLE
        }
    :: atomic { steps > 0 && (st == OWNED || st == HANDING) && CANWRITE && !renewing -> steps--; renewing = true; renewAt = now;
                printf("t=%d node %d sends a renewal\n", now, me) }
    :: renewing ->
        /* the renewal script runs (maybe late), its answer may be lost */
        atomic {
#ifdef BUG_RENEW
            renewOk = true; holder = me; expiry = now + TTL;
#else
            if
            :: holder == me && now < expiry -> renewOk = true; expiry = now + TTL
            :: else -> renewOk = false
            fi;
#endif
            if
            :: renewOk -> printf("t=%d Redis renews node %d's lease\n", now, me)
            :: else -> printf("t=%d Redis refuses node %d's renewal\n", now, me)
            fi;
            if
            :: renewOk -> proven = renewAt + TTL
            :: skip     /* the answer is lost */
            fi;
            renewing = false; renewOk = false; renewAt = 0
        }
    :: atomic { steps > 0 && (st == OWNED || st == HANDING) && CANWRITE ->
        /* the buffer writes a batch under the node's fence */
            steps--;
            copyLogToPG(myFence, ok);
            if
            :: ok -> printf("t=%d node %d writes the log to PostgreSQL (fence %d)\n", now, me, myFence)
            :: else -> printf("t=%d PostgreSQL refuses node %d's rows (fence %d is stale)\n", now, me, myFence)
            fi;
            if :: !ok -> st = LOST :: else -> skip fi;
            ok = false
        }
    :: atomic { steps > 0 && (st == OWNED || st == HANDING) ->
        /* trim: through the persisted prefix */
            steps--;
#ifdef BUG_TRIM
            j = logLast;
#else
            j = 0;
            do
            :: j + 1 < SEQS && j + 1 <= logLast && pgMsg[j + 1] != 0 -> j++
            :: else -> break
            od;
#endif
            i = 1;
            do
            :: i <= j -> logMsg[i] = 0; i++
            :: else -> break
            od;
            printf("t=%d node %d trims the log through seq %d\n", now, me, j);
            i = 0; j = 0;
            CHECK_DURABLE
        }
    :: (st == OWNED || st == HANDING) && !CANWRITE ->
        /* time passed beyond what the lease proves: stop */
        st = LOST
    :: atomic { steps > 0 && st == OWNED && CANWRITE -> steps--; st = HANDING }   /* the ring moved, or the node drains */
    :: st == HANDING && CANWRITE ->
        atomic {
            copyLogToPG(myFence, ok);
            if
            :: ok -> if :: holder == me -> holder = 0 :: else -> skip fi; st = RELEASED
            :: else -> st = LOST
            fi;
            ok = false
        }
    :: atomic { steps > 0 && crashes < CRASHES -> steps--; crashes++; printf("t=%d node %d crashes\n", now, me); st = IDLE; myFence = 0; proven = 0; pending = 0; renewing = false; renewAt = 0 }
    :: steps == 0 && pending == 0 && !renewing -> break
    od;
    finished++
}

active proctype clock() {
    do
    :: now < TMAX -> now++
    :: else -> break
    od
}

/* The end: every node stopped; a last owner takes the lease after it lapsed (a higher fence),
 * recovers the log's tail, and PostgreSQL then holds every acknowledged message once, at a
 * gap-free seq (3), each at the seq it was first given (4). */
active proctype finale() {
    byte i, m;
    bool ok;
    finished == N && now == TMAX;
    atomic {
        fence++; ownerFence = fence;
        copyLogToPG(fence, ok);
        m = 1;
        do
        :: m <= M -> assert(!acked[m] || inPG(m)); m++
        :: else -> break
        od;
        i = 1;
        do
        :: i + 1 < SEQS -> assert(pgMsg[i] != 0 || pgMsg[i + 1] == 0); i++
        :: else -> break
        od;
        i = 1;
        do
        :: i < SEQS ->
            assert(pgMsg[i] == 0 || dedupe[pgMsg[i]] == i);
            i++
        :: else -> break
        od
    }
}

init {
    atomic { run node(1); run node(2); run node(3) }
}
