// A pool of persistent worker threads. parallel_for splits [0, n) into
// contiguous chunks that the calling thread and the workers claim one at a
// time, and blocks until all are done; no thread is created per call (the hot
// path of a decode step calls it hundreds of times). Claiming rather than a
// fixed split keeps a call fast when a worker is descheduled on a busy
// machine: whoever is running takes the remaining chunks.
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ggufsm {

// Memory a pool thread reads ahead, by software prefetch, while it waits for
// the next job: the first bytes of the weights its share of the next product
// will stream. A decode step of one session leaves the memory idle between its
// products (a norm, the attention, a quantization: one thread busy, the other
// spinning); prefetching there starts the next product's stream early. A
// prefetch never faults, so a range may even outlive its memory (a freed
// model's weights): it is a hint, never a read.
struct ReadAheadRange {
    const void* begin = nullptr;
    size_t bytes = 0;
};
// Per thread index (0 = the caller), up to kRanges ranges, read in order.
struct ReadAhead {
    static constexpr int kThreads = 8;
    static constexpr int kRanges = 4;
    std::array<std::array<ReadAheadRange, kRanges>, kThreads> ranges{};
    // Adds [begin, begin + bytes) to thread t's ranges (ignored past kThreads or kRanges).
    void add(int t, const void* begin, size_t bytes);
};

// Whether parallel_for's `then` is honoured (on by default): off only for the
// benches' A/B of the read-ahead within one process (kernels.set_step_shape).
void set_read_ahead_enabled(bool on);
bool read_ahead_enabled();
// Lines (of 64 bytes) a team's member 0 asks for of its next product share right before each small op
// it runs (Team::phase); 0: none. For the benches' A/B (kernels.set_step_shape); no result changes.
void set_small_op_read_ahead(int lines);
// How long an idle pool worker spins for the next job before it sleeps (kernels.set_step_shape sets it for
// the benches' A/B; no result changes). 1.5 ms by default, not the 200 us of sessions 1-13: between two
// batched passes the handles' Python (the gather, ~0.5 ms, and the time between steps, ~0.3 ms) outlasted
// 200 us, so the worker slept and the next pass paid its wake, a cross-vCPU interrupt (this VM runs with
// halt polling off). Quiet, 4 SmolLM2 handles, in one process: 1.05-1.11x the aggregate at 1500 (three runs
// of 10-24 rounds: default/1500 0.904-0.954x), 1.07x at 800, 1.00x at 3000; one handle 0.98-1.04x (noise).
constexpr int64_t kDefaultWorkerSpinUs = 1500;
void set_worker_spin(std::chrono::microseconds limit);

class Team;

class ThreadPool {
public:
    // n_threads = 0: one per hardware thread.
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    // Threads that run chunks, the calling thread included.
    int size() const { return n_threads_; }

    // Times a caller of parallel_for has blocked (rather than spun) waiting for
    // other threads' chunks: for tests that prove the blocked caller is woken.
    int64_t blocked_waits() const { return blocked_waits_.load(); }

    // Chunks per thread unless the caller says otherwise: enough for a
    // running thread to absorb a slower one's share where items cost unevenly
    // (a causal attention's later tokens see more positions), few enough that
    // claiming costs nothing.
    static constexpr int kDefaultChunksPerThread = 4;

    // fn(begin, end, thread_index) over [0, n) in contiguous chunks
    // (chunks_per_thread per thread, never more than n); each thread may run
    // several chunks, one after another, and thread_index (0 = the caller,
    // < size()) says which thread runs it, so per-thread scratch can be
    // indexed by it. A thread that is not running leaves its chunks to the
    // others, whatever the count. Blocks until every chunk has returned; the
    // first exception thrown by a chunk is rethrown here. Calls from several
    // threads at once are serialized.
    //
    // The caller waits for the others' chunks spinning for a while, then
    // blocking, so a worker descheduled mid-chunk on a busy machine gets a core
    // back rather than the caller spinning on it.
    //
    // then: what each thread reads ahead once its chunks are done, until the
    // next job comes (the caller: while it waits for the others' chunks).
    // Reading ahead changes no result; the ranges need not stay valid.
    void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                      int chunks_per_thread = kDefaultChunksPerThread, const ReadAhead* then = nullptr);

    // fn(team, member) once on every thread of the pool at once, member 0..size()-1 (0 usually the
    // caller), in one dispatch: the members walk the same ops together and meet at team.sync() where
    // one needs another's result (a decode step's layers, forward/pass.cpp), instead of one dispatch
    // and barrier per op. Blocks until every member has returned. A member that throws releases the
    // others from their syncs (each leaves its fn), and the first exception is rethrown here, the pool
    // usable after. Inside fn, parallel_for runs its whole range on the calling thread (a team
    // already holds every thread).
    void run_team(const std::function<void(Team&, int)>& fn);

    // Bytes a thread reads ahead at most after one job: well inside its L2
    // (512 KiB on this host's cores), so the lines are still there when its
    // share of the next product streams them.
    static constexpr size_t kReadAheadBytes = size_t(192) << 10;

private:
    void worker_loop(int thread_index);
    // Claims and runs chunks of the job in the claim word, whichever
    // generation that is, until none is left.
    // Returns whether it ran any; then *then holds its read-ahead for after the job.
    bool run_chunks(int thread_index, std::array<ReadAheadRange, ReadAhead::kRanges>* then);
    // The caller, after its own chunks: until all `chunks` are done.
    void wait_done(int64_t chunks, std::array<ReadAheadRange, ReadAhead::kRanges>* then);

    int n_threads_;
    std::vector<std::thread> workers_;
    std::mutex call_mutex_;  // one parallel_for at a time

    // Hot words each on their own cache line: spinning workers read
    // generation_ while claimers hammer claim_ and finishers add to done_.
    //
    // Workers spin on generation_ for a while after a job (a decode step
    // issues jobs microseconds apart), then sleep on work_ready_; the caller
    // touches the mutex and condition variable only when one is asleep.
    alignas(64) std::atomic<uint64_t> generation_{0};
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stopping_{false};
    // The job's claim word: chunk count (bits 16..31) | next chunk (0..15).
    // One fetch_add claims a chunk; the count rides in the word, so a worker
    // that wakes late and lands on a later job sees that job's count and runs
    // that job's chunk correctly.
    alignas(64) std::atomic<uint64_t> claim_{0};
    // Chunks finished in the current job; each thread adds its tally once.
    alignas(64) std::atomic<int64_t> done_{0};

    alignas(64) std::mutex sleep_mutex_;
    std::condition_variable work_ready_;
    // Written only while no chunk of any job is unclaimed or running.
    const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
    int64_t job_n_ = 0;
    const ReadAhead* job_then_ = nullptr;
    // The caller, blocked until the job's chunks are done (after spinning a while).
    alignas(64) std::atomic<bool> caller_waiting_{false};
    std::atomic<int64_t> blocked_waits_{0};
    std::mutex done_mutex_;
    std::condition_variable job_done_;
    std::mutex error_mutex_;
    std::exception_ptr first_error_;
};

// The members of one run_team, walking one op list together as a chain of phases: every member calls
// phase() for every op, in the same order, with the same part count (a product's row parts, an
// attention's jobs, 1 for a small op: a norm, rope, the KV store, a quantization). A phase's parts
// run only once the phase before is done (its results are what they read), each exactly once, by
// whichever member takes it (a small op: member 0); a member that finds nothing left to take goes
// straight on to the next phase without waiting. So no member waits for another member, only for
// parts in progress: one descheduled on a busy machine between its parts leaves the walk to the
// others (a barrier that every member must reach would hold the step for its time slice, hundreds of
// times a step). While a member
// waits for a phase to finish it reads ahead what set_read_ahead gave it: the first weights of its
// share of the next product.
class Team {
public:
    explicit Team(int members);
    int size() const { return members_; }
    // Parts a phase takes at most (InvalidInput beyond).
    int64_t max_parts() const { return int64_t(parts_.size()); }

    // fn(part) for every part of [0, parts), each exactly once across the members, none before the
    // previous phase is done. Member m first takes its own share, [m * parts / size, (m + 1) * parts /
    // size) in order (the share its read-ahead read the first bytes of), then the parts the others
    // have not started yet, from the end of their shares. Throws Aborted once a member has failed.
    template <typename Fn>
    void phase(int member, int64_t parts, Fn&& fn) {
        // An empty phase is no link of the chain: the next one waits for the one before it.
        if (parts <= 0) return;
        MemberState& m = member_state_[size_t(member)];
        const uint64_t j = ++m.phases;
        const int64_t before = m.last_parts;
        m.last_parts = parts;
        if (parts > max_parts()) throw_too_many_parts(parts);
        bool ready = j == 1;
        if (parts == 1) {
            // A small op: member 0's alone (it never resigns), so a chain of them stays on one thread and
            // its data in one core's cache; the others go on to the next phase of several parts.
            if (member == 0) {
                if (!ready) wait_done(m, j - 1, before);
                // Member 0 streams nothing while it runs a small op: the next lines of its share of the next
                // product asked for first arrive meanwhile, so its stream does not start cold after the op.
                for (int step = 0; step < lead_read_ahead_steps_ && read_ahead_step(m); ++step) {
                }
                fn(int64_t(0));
                finish(j);
            }
            return;
        }
        // Takes part p and runs it: false when another member has it.
        const auto take_and_run = [&](int64_t p) {
            if (parts_[size_t(p)].load(std::memory_order_relaxed) >= j) return false;
            if (!ready) {
                wait_done(m, j - 1, before);
                ready = true;
            }
            uint64_t seen = parts_[size_t(p)].load(std::memory_order_relaxed);
            if (seen >= j || !parts_[size_t(p)].compare_exchange_strong(seen, j, std::memory_order_acq_rel)) return false;
            fn(p);
            finish(j);
            return true;
        };
        const auto share = [&](int64_t of) { return std::pair<int64_t, int64_t>{parts * of / members_, parts * (of + 1) / members_}; };
        const auto [own_begin, own_end] = share(member);
        for (int64_t p = own_begin; p < own_end; ++p) take_and_run(p);
        for (int other = 1; other < members_; ++other) {
            const auto [begin, end] = share((member + other) % members_);
            // The owner takes its share in order: once a part from the end is taken, the rest is too.
            for (int64_t p = end - 1; p >= begin; --p) {
                if (!take_and_run(p)) break;
            }
        }
    }

    // Member's read-ahead for its next waits (its ranges of `ahead`), replacing what was left of the
    // last; nothing when the pool's read-ahead is off (set_read_ahead_enabled).
    void set_read_ahead(int member, const ReadAhead& ahead);

    // Releases every waiting member; they throw Aborted.
    void abort();
    bool aborted() const { return aborted_.load(std::memory_order_acquire); }
    struct Aborted {};

    // A member that may leave the walk rather than sleep (run_team: every member but 0, which runs the
    // small ops). No part of several waits for a given member, so one that would sleep while another
    // member still walks leaves instead (throws Resigned): asleep, it would still hold up the end of
    // the team until a busy machine gave it a core again, only to find every phase done.
    void set_resignable(int member, bool on) { member_state_[size_t(member)].resignable = on; }
    struct Resigned {};
    // Member's walk is over (it returned or failed; one that resigned is counted out already).
    void leave(int member) {
        if (!member_state_[size_t(member)].resigned) walking_.fetch_sub(1);
    }

private:
    // A part's flag holds the last phase that took it: a phase j' > j takes parts only once phase j'-1
    // is done, so every phase before it too, and a flag at or past j means the part is (being) run.
    // Phase j's finished parts count in slot j % kSlots, stamped with j: (j << kCountBits) | count; a
    // slot is reused by phase j + kSlots only once phase j is done.
    static constexpr int kSlots = 4;
    static constexpr int kCountBits = 24;
    bool done(uint64_t j, int64_t parts) const {
        if (j == 0) return true;  // before the first phase
        const uint64_t v = slots_[j % kSlots].load();
        return (v >> kCountBits) > j || ((v >> kCountBits) == j && int64_t(v & ((uint64_t(1) << kCountBits) - 1)) >= parts);
    }
    void finish(uint64_t j);
    [[noreturn]] void throw_too_many_parts(int64_t parts) const;

    struct alignas(64) MemberState {
        uint64_t phases = 0;
        int64_t last_parts = 0;
        bool resignable = false, resigned = false;
        std::array<ReadAheadRange, ReadAhead::kRanges> ahead{};
        size_t ahead_range = 0, ahead_offset = 0, ahead_budget = 0;
    };
    // Until phase j's `parts` are done: reading ahead, spinning, then asleep; Aborted if the team is.
    void wait_done(MemberState& m, uint64_t j, int64_t parts);
    // Member's read-ahead: the next few lines; false once there is nothing left.
    bool read_ahead_step(MemberState& m);

    const int members_;
    const int lead_read_ahead_steps_;  // read_ahead_step()s member 0 takes before a small op (set_small_op_read_ahead)
    std::vector<MemberState> member_state_;
    std::vector<std::atomic<uint64_t>> parts_;
    alignas(64) std::array<std::atomic<uint64_t>, kSlots> slots_{};
    alignas(64) std::atomic<bool> aborted_{false};
    std::atomic<int> walking_;  // members whose walk is not over
    std::atomic<int> sleepers_{0};
    std::mutex sleep_mutex_;
    std::condition_variable released_;
};

}  // namespace ggufsm
