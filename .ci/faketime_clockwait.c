/* LD_PRELOAD shim for the faketime step of .ci/run (libfaketime 0.9.10).
 *
 * libfaketime fakes CLOCK_MONOTONIC (offset like the wall clock) but does not intercept sem_clockwait(), which
 * CPython >= 3.11 uses for every lock/Event/Condition wait with a timeout: the deadline CPython computes from the
 * faked monotonic clock (now + 40 days + timeout) is then waited for on the real one, so threading.Event.wait(1)
 * blocks for ~40 days (a recorder worker's 1 s flush never comes: "events not stored within 20 s").
 * FAKETIME_DONT_FAKE_MONOTONIC=1 is no way out: libfaketime then shifts absolute CLOCK_MONOTONIC deadlines of
 * clock_nanosleep() by the wall-clock offset anyway and time.sleep() fails with EINVAL.
 * This shim translates a CLOCK_MONOTONIC deadline from the faked clock to the real one (read by the raw
 * syscall, which libfaketime does not see) before calling the real sem_clockwait / pthread_cond_clockwait.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static struct timespec to_real(clockid_t clock, const struct timespec *abstime) {
    struct timespec fake, real, out;
    clock_gettime(clock, &fake);                  /* through libfaketime: the faked clock */
    syscall(SYS_clock_gettime, clock, &real);     /* the kernel's clock */
    long long ns = (abstime->tv_sec - fake.tv_sec) * 1000000000LL + (abstime->tv_nsec - fake.tv_nsec);
    long long t = real.tv_sec * 1000000000LL + real.tv_nsec + ns;
    out.tv_sec = t / 1000000000LL;
    out.tv_nsec = t % 1000000000LL;
    return out;
}

int sem_clockwait(sem_t *sem, clockid_t clock, const struct timespec *abstime) {
    static int (*real_fn)(sem_t *, clockid_t, const struct timespec *);
    if (!real_fn) real_fn = (int (*)(sem_t *, clockid_t, const struct timespec *))dlsym(RTLD_NEXT, "sem_clockwait");
    if (clock == CLOCK_MONOTONIC && abstime) {
        struct timespec r = to_real(clock, abstime);
        return real_fn(sem, clock, &r);
    }
    return real_fn(sem, clock, abstime);
}

int pthread_cond_clockwait(pthread_cond_t *cond, pthread_mutex_t *mutex, clockid_t clock,
                           const struct timespec *abstime) {
    static int (*real_fn)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
    if (!real_fn)
        real_fn = (int (*)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *))dlsym(
            RTLD_NEXT, "pthread_cond_clockwait");
    if (clock == CLOCK_MONOTONIC && abstime) {
        struct timespec r = to_real(clock, abstime);
        return real_fn(cond, mutex, clock, &r);
    }
    return real_fn(cond, mutex, clock, abstime);
}
