#include "runtime/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "errors.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GGUFSM_PAUSE() _mm_pause()
#else
#define GGUFSM_PAUSE() std::this_thread::yield()
#endif

namespace ggufsm {

namespace {
// How long an idle worker spins before it sleeps (set_worker_spin): long enough to bridge the
// gaps between the matmuls of one forward pass and between two batched passes (thread_pool.h),
// short enough not to burn a core that another process wants once the generation is over.
std::atomic<int64_t> worker_spin_us{kDefaultWorkerSpinUs};
// The claim word's 16-bit fields: chunk counts stay below half their range,
// so the few claims that overshoot a finished job (one per thread) never
// carry into the count.
constexpr int64_t kMaxChunks = 0x7FFF;

// How long the caller spins for the others' chunks before it blocks: beyond the
// few microseconds a layer matrix's chunks end apart on a quiet machine, and
// most of a large matrix's chunk (~350 us, matmul.cpp), so blocking, and its
// wake-up, is for a thread that is not running.
constexpr auto kCallerSpinTime = std::chrono::microseconds(500);
}  // namespace

namespace {
// One waiting thread's spin, for up to `limit`; step() returns false once the
// limit is past and the thread should block. It pauses rather than yields: at
// load 14 on the 2 cores, yielding past 20 us of spin cut a SmolLM2 decode
// step's CPU time by a third but made its wall time 1.56x (8 rounds, every
// one slower): a yielded core goes to another process for a time slice.
class Spin {
public:
    explicit Spin(std::chrono::microseconds limit) : limit_(limit) {}
    bool step() {
        GGUFSM_PAUSE();
        // The clock is read only every 64 spins, and first once the wait outlasts them: most end sooner.
        if (++spins_ % 64 != 0) return true;
        const auto now = std::chrono::steady_clock::now();
        if (spins_ == 64) block_at_ = now + limit_;
        return now < block_at_;
    }

private:
    std::chrono::microseconds limit_;
    int64_t spins_ = 0;
    std::chrono::steady_clock::time_point block_at_{};
};
// A thread's read-ahead (thread_pool.h), a few lines at a time between its looks
// at whether the next job has come, at most kReadAheadBytes in all.
class ReadAheadCursor {
public:
    using Ranges = std::array<ReadAheadRange, ReadAhead::kRanges>;
    explicit ReadAheadCursor(const Ranges& ranges) : ranges_(ranges) {}
    // Prefetches the next kLinesPerStep lines; false once there is nothing left.
    bool step() {
        int lines = 0;
        while (range_ < ranges_.size() && lines < kLinesPerStep) {
            const ReadAheadRange& r = ranges_[range_];
            if (offset_ >= r.bytes || budget_ == 0) {
                if (budget_ == 0) range_ = ranges_.size();
                ++range_;
                offset_ = 0;
                continue;
            }
#if defined(__x86_64__) || defined(__i386__)
            _mm_prefetch(static_cast<const char*>(r.begin) + offset_, _MM_HINT_T0);
#else
            __builtin_prefetch(static_cast<const char*>(r.begin) + offset_);
#endif
            offset_ += kLine;
            budget_ = budget_ > kLine ? budget_ - kLine : 0;
            ++lines;
        }
        return range_ < ranges_.size();
    }

private:
    static constexpr size_t kLine = 64;
    // 4 KiB a step: the next job's wait for a thread that is reading ahead is about one step's issue.
    static constexpr int kLinesPerStep = 64;
    Ranges ranges_;
    size_t range_ = 0, offset_ = 0, budget_ = ThreadPool::kReadAheadBytes;
};
}  // namespace

namespace {
std::atomic<bool> read_ahead_on{true};
std::atomic<int> small_op_read_ahead_lines{0};
// Lines read_ahead_step asks for a step.
constexpr int kTeamLinesPerStep = 16;
// Whether this thread is a member of a running team (run_team): its parallel_for calls run inline.
thread_local bool in_team = false;
}  // namespace
void set_read_ahead_enabled(bool on) { read_ahead_on.store(on); }
bool read_ahead_enabled() { return read_ahead_on.load(std::memory_order_relaxed); }
void set_small_op_read_ahead(int lines) { small_op_read_ahead_lines.store(std::max(0, lines)); }
void set_worker_spin(std::chrono::microseconds limit) { worker_spin_us.store(std::max<int64_t>(0, limit.count())); }

void ReadAhead::add(int t, const void* begin, size_t bytes) {
    if (t < 0 || t >= kThreads || bytes == 0) return;
    for (ReadAheadRange& r : ranges[size_t(t)]) {
        if (r.bytes == 0) {
            r = ReadAheadRange{begin, bytes};
            return;
        }
    }
}

ThreadPool::ThreadPool(int n_threads) {
    if (n_threads < 0) {
        throw Error(code::InvalidInput, "thread count must be >= 0 (0 = all cores), got " + std::to_string(n_threads));
    }
    if (n_threads == 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    n_threads_ = n_threads;
    workers_.reserve(n_threads - 1);
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    stopping_.store(true);
    generation_.fetch_add(1);
    { std::lock_guard<std::mutex> lock(sleep_mutex_); }
    work_ready_.notify_all();
    for (auto& t : workers_) t.join();
}

bool ThreadPool::run_chunks(int thread_index, std::array<ReadAheadRange, ReadAhead::kRanges>* then) {
    int64_t ran = 0;
    for (;;) {
        const uint64_t word = claim_.fetch_add(1, std::memory_order_acq_rel);
        const int64_t chunk = static_cast<int64_t>(word & 0xFFFF), chunks = static_cast<int64_t>((word >> 16) & 0xFFFF);
        if (chunk >= chunks) break;
        // job_ and job_n_ are this word's job: they change only after every chunk of it is done.
        const int64_t begin = job_n_ * chunk / chunks, end = job_n_ * (chunk + 1) / chunks;
        try {
            if (begin < end) (*job_)(begin, end, thread_index);
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex_);
            if (!first_error_) first_error_ = std::current_exception();
        }
        ++ran;
    }
    if (ran == 0) return false;
    // The job's fields stay put until every chunk is counted done, this thread's among them.
    if (then) *then = job_then_ && thread_index < ReadAhead::kThreads ? job_then_->ranges[size_t(thread_index)]
                                                                      : std::array<ReadAheadRange, ReadAhead::kRanges>{};
    done_.fetch_add(ran);
    if (caller_waiting_.load()) {
        // The caller sets caller_waiting_ before its last look at done_ (both seq_cst), so it either
        // sees this thread's chunks done or is woken here.
        { std::lock_guard<std::mutex> lock(done_mutex_); }
        job_done_.notify_one();
    }
    return true;
}

void ThreadPool::worker_loop(int thread_index) {
    uint64_t seen = 0;
    std::array<ReadAheadRange, ReadAhead::kRanges> then{};
    for (;;) {
        uint64_t now = generation_.load(std::memory_order_acquire);
        // The last job's read-ahead first, a step between looks at generation_, then the spin.
        ReadAheadCursor ahead(then);
        while (now == seen && ahead.step()) now = generation_.load(std::memory_order_acquire);
        then = {};
        Spin spin(std::chrono::microseconds(worker_spin_us.load(std::memory_order_relaxed)));
        while (now == seen && spin.step()) now = generation_.load(std::memory_order_acquire);
        if (now == seen) {
            // Announce the sleep before the last look at generation_; parallel_for
            // bumps generation_ before it looks at sleepers_ (both seq_cst), so
            // one of the two always sees the other.
            sleepers_.fetch_add(1);
            {
                std::unique_lock<std::mutex> lock(sleep_mutex_);
                work_ready_.wait(lock, [&] { return generation_.load() != seen; });
            }
            sleepers_.fetch_sub(1);
            now = generation_.load(std::memory_order_acquire);
        }
        seen = now;
        if (stopping_.load()) return;
        run_chunks(thread_index, &then);
    }
}

void ThreadPool::wait_done(int64_t chunks, std::array<ReadAheadRange, ReadAhead::kRanges>* then) {
    if (then) {
        ReadAheadCursor ahead(*then);
        while (done_.load(std::memory_order_acquire) != chunks && ahead.step()) {
        }
    }
    Spin spin(kCallerSpinTime);
    while (done_.load(std::memory_order_acquire) != chunks) {
        if (spin.step()) continue;
        // A chunk is taking long (a descheduled worker, or a large one): stop holding the core.
        caller_waiting_.store(true);
        blocked_waits_.fetch_add(1);
        {
            std::unique_lock<std::mutex> lock(done_mutex_);
            job_done_.wait(lock, [&] { return done_.load() == chunks; });
        }
        caller_waiting_.store(false);
        return;
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int chunks_per_thread,
                              const ReadAhead* then) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n == 1 || in_team) {
        fn(0, n, 0);
        return;
    }
    std::lock_guard<std::mutex> call_lock(call_mutex_);
    // The previous job is fully done, so no thread reads these until the claim word below publishes them.
    job_ = &fn;
    job_n_ = n;
    job_then_ = read_ahead_enabled() ? then : nullptr;
    first_error_ = nullptr;
    done_.store(0, std::memory_order_relaxed);
    const int64_t chunks = std::min({n, std::max<int64_t>(1, chunks_per_thread) * n_threads_, kMaxChunks});
    const uint64_t generation = generation_.load(std::memory_order_relaxed) + 1;
    claim_.store(static_cast<uint64_t>(chunks) << 16, std::memory_order_release);
    generation_.store(generation);
    if (sleepers_.load() > 0) {
        // A worker between its last look at generation_ and its wait holds the mutex.
        { std::lock_guard<std::mutex> lock(sleep_mutex_); }
        work_ready_.notify_all();
    }
    std::array<ReadAheadRange, ReadAhead::kRanges> caller_then{};
    run_chunks(0, &caller_then);
    wait_done(chunks, job_then_ ? &caller_then : nullptr);
    job_ = nullptr;
    job_then_ = nullptr;
    if (first_error_) std::rethrow_exception(first_error_);
}

void ThreadPool::run_team(const std::function<void(Team&, int)>& fn) {
    Team team(in_team ? 1 : n_threads_);
    if (team.size() == 1) {
        fn(team, 0);
        return;
    }
    // One chunk per member: a thread runs a second member only once its first has returned, which it
    // does only when every member has passed every sync (or the team aborted), so no thread ever waits
    // on a member queued behind itself.
    parallel_for(
        team.size(),
        [&](int64_t member, int64_t, int) {
            struct InTeam {
                InTeam(Team& t, int m) : team(t), member(m) { in_team = true; }
                ~InTeam() {
                    in_team = false;
                    team.leave(member);
                }
                Team& team;
                int member;
            } member_of_team(team, int(member));
            // Member 0 never resigns: it runs the small ops, and some member must be there to.
            team.set_resignable(int(member), member != 0);
            try {
                fn(team, int(member));
            } catch (const Team::Aborted&) {
                // Another member failed: its exception is the one parallel_for rethrows.
            } catch (const Team::Resigned&) {
                // Left the walk to the others rather than sleep (Team::wait_done).
            } catch (...) {
                team.abort();
                throw;
            }
        },
        1);
}

// Parts a claim takes at most: 64 per member, the most matmul.cpp cuts a product into (its chunks_per_thread_for),
// and at least 1024 (a decode token's attention jobs: 8 segments per KV head).
Team::Team(int members)
    : members_(members),
      lead_read_ahead_steps_((small_op_read_ahead_lines.load(std::memory_order_relaxed) + kTeamLinesPerStep - 1) / kTeamLinesPerStep),
      member_state_(size_t(members)), parts_(std::max<size_t>(1024, size_t(64) * size_t(members))), walking_(members) {
    for (auto& p : parts_) p.store(0, std::memory_order_relaxed);
    for (auto& slot : slots_) slot.store(0, std::memory_order_relaxed);
}

void Team::set_read_ahead(int member, const ReadAhead& ahead) {
    MemberState& m = member_state_[size_t(member)];
    m.ahead = member < ReadAhead::kThreads && read_ahead_enabled() ? ahead.ranges[size_t(member)]
                                                                   : std::array<ReadAheadRange, ReadAhead::kRanges>{};
    m.ahead_range = m.ahead_offset = 0;
    m.ahead_budget = ThreadPool::kReadAheadBytes;
}

bool Team::read_ahead_step(MemberState& m) {
    constexpr size_t kLine = 64;
    int lines = 0;
    while (m.ahead_range < m.ahead.size() && lines < kTeamLinesPerStep) {
        const ReadAheadRange& r = m.ahead[m.ahead_range];
        if (m.ahead_offset >= r.bytes || m.ahead_budget == 0) {
            m.ahead_range = m.ahead_budget == 0 ? m.ahead.size() : m.ahead_range + 1;
            m.ahead_offset = 0;
            continue;
        }
#if defined(__x86_64__) || defined(__i386__)
        _mm_prefetch(static_cast<const char*>(r.begin) + m.ahead_offset, _MM_HINT_T0);
#else
        __builtin_prefetch(static_cast<const char*>(r.begin) + m.ahead_offset);
#endif
        m.ahead_offset += kLine;
        m.ahead_budget = m.ahead_budget > kLine ? m.ahead_budget - kLine : 0;
        ++lines;
    }
    return m.ahead_range < m.ahead.size();
}

void Team::finish(uint64_t j) {
    std::atomic<uint64_t>& slot = slots_[j % kSlots];
    uint64_t v = slot.load();
    // seq_cst, as the sleepers_ look after it and a sleeper's look at the slot: one sees the other.
    while (!slot.compare_exchange_weak(v, (v >> kCountBits) == j ? v + 1 : (j << kCountBits) | 1)) {
    }
    if (sleepers_.load() > 0) {
        { std::lock_guard<std::mutex> lock(sleep_mutex_); }
        released_.notify_all();
    }
}

void Team::throw_too_many_parts(int64_t parts) const {
    throw Error(code::InvalidInput, "a team's phase takes at most " + std::to_string(max_parts()) + " parts, got " + std::to_string(parts));
}

void Team::wait_done(MemberState& m, uint64_t j, int64_t parts) {
    if (done(j, parts)) return;
    // The member that arrives first reads ahead the next product's weights while it waits (a few lines between looks).
    while (!done(j, parts) && !aborted() && read_ahead_step(m)) {
    }
    Spin spin(kCallerSpinTime);
    while (!done(j, parts) && !aborted()) {
        if (spin.step()) continue;
        // The member running a part is not running (a busy machine). One that may resign leaves the walk
        // while another still walks (that one, or the holder, takes what is left); else it gives the
        // core back until the part is done.
        if (m.resignable) {
            int walking = walking_.load();
            while (walking > 1 && !walking_.compare_exchange_weak(walking, walking - 1)) {
            }
            if (walking > 1) {
                m.resigned = true;  // counted out here: leave() does not count it again
                throw Resigned{};
            }
        }
        sleepers_.fetch_add(1);
        {
            std::unique_lock<std::mutex> lock(sleep_mutex_);
            released_.wait(lock, [&] { return done(j, parts) || aborted(); });
        }
        sleepers_.fetch_sub(1);
    }
    if (!done(j, parts)) throw Aborted{};
}

void Team::abort() {
    aborted_.store(true, std::memory_order_release);
    { std::lock_guard<std::mutex> lock(sleep_mutex_); }
    released_.notify_all();
}

}  // namespace ggufsm
