# The C side of proxy/tls/_native.pyx (included by it): the OpenSSL prototypes it calls (no OpenSSL headers
# needed), and small C helpers for the socket, epoll and error calls.

cdef extern from *:
    """
    #include <sys/socket.h>
    #include <sys/types.h>
    #include <netinet/in.h>
    #include <netinet/tcp.h>
    #include <arpa/inet.h>
    #include <sys/epoll.h>
    #include <errno.h>
    #include <unistd.h>
    #include <time.h>
    typedef struct ssl_st SSL;
    typedef struct ssl_ctx_st SSL_CTX;
    SSL *SSL_new(SSL_CTX *ctx);
    void SSL_free(SSL *ssl);
    int SSL_set_fd(SSL *s, int fd);
    void SSL_set_accept_state(SSL *s);
    int SSL_do_handshake(SSL *s);
    int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes);
    int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written);
    int SSL_pending(const SSL *s);
    int SSL_get_error(const SSL *s, int ret_code);
    int SSL_shutdown(SSL *s);
    void SSL_set_quiet_shutdown(SSL *ssl, int mode);
    long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg);
    long SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg);
    long SSL_CTX_callback_ctrl(SSL_CTX *ctx, int cmd, void (*fp)(void));
    unsigned long SSL_CTX_get_options(const SSL_CTX *ctx);
    const char *SSL_get_servername(const SSL *s, const int type);
    SSL_CTX *SSL_set_SSL_CTX(SSL *ssl, SSL_CTX *ctx);
    void SSL_get0_alpn_selected(const SSL *ssl, const unsigned char **data, unsigned int *len);
    int SSL_session_reused(const SSL *s);
    const char *SSL_get_version(const SSL *s);
    int SSL_set_ex_data(SSL *ssl, int idx, void *data);
    void *SSL_get_ex_data(const SSL *ssl, int idx);
    typedef struct x509_st X509;
    X509 *SSL_get1_peer_certificate(const SSL *s);
    int i2d_X509(X509 *a, unsigned char **out);
    void X509_free(X509 *a);
    void CRYPTO_free(void *ptr, const char *file, int line);
    unsigned long ERR_peek_last_error(void);
    void ERR_clear_error(void);
    const char *ERR_reason_error_string(unsigned long e);
    #define PYNGRESS_SSL_ERROR_NONE 0
    #define PYNGRESS_SSL_ERROR_SSL 1
    #define PYNGRESS_SSL_ERROR_WANT_READ 2
    #define PYNGRESS_SSL_ERROR_WANT_WRITE 3
    #define PYNGRESS_SSL_ERROR_SYSCALL 5
    #define PYNGRESS_SSL_ERROR_ZERO_RETURN 6
    /* SSL_set_mode(): SSL_CTRL_MODE; partial writes and a moving (growing) retry buffer */
    #define PYNGRESS_SSL_CTRL_MODE 33
    #define PYNGRESS_SSL_MODE 0x3
    /* SSL_CTX_set_tlsext_servername_callback / _arg */
    #define PYNGRESS_SSL_CTRL_SET_TLSEXT_SERVERNAME_CB 53
    #define PYNGRESS_SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG 54
    typedef int (*pyngress_servername_cb)(SSL *, int *, void *);
    static long pyngress_set_servername_cb(SSL_CTX *ctx, pyngress_servername_cb cb, void *arg) {
        if (SSL_CTX_callback_ctrl(ctx, PYNGRESS_SSL_CTRL_SET_TLSEXT_SERVERNAME_CB, (void (*)(void))cb) != 1)
            return 0;
        return SSL_CTX_ctrl(ctx, PYNGRESS_SSL_CTRL_SET_TLSEXT_SERVERNAME_ARG, 0, arg);
    }
    static double pyngress_monotonic(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    }
    /* What the peer sent and nobody read, read and dropped (bounded), so that close() ends the connection with a
       FIN rather than a reset (a failed handshake leaves the rest of a plain HTTP request unread). */
    static void pyngress_drain(int fd) {
        char sink[16384];
        int rounds;
        for (rounds = 0; rounds < 16; rounds++) {
            if (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) <= 0)
                return;
        }
    }
    /* getpeername/getsockname as the text address and port: family AF_INET or AF_INET6, else 0 */
    static int pyngress_address(int fd, int peer, char *text, size_t size, int *port,
                                unsigned int *flowinfo, unsigned int *scope) {
        struct sockaddr_storage address;
        socklen_t length = sizeof(address);
        int rc = peer ? getpeername(fd, (struct sockaddr *)&address, &length)
                      : getsockname(fd, (struct sockaddr *)&address, &length);
        if (rc != 0)
            return 0;
        if (address.ss_family == AF_INET) {
            struct sockaddr_in *in4 = (struct sockaddr_in *)&address;
            if (inet_ntop(AF_INET, &in4->sin_addr, text, size) == NULL)
                return 0;
            *port = ntohs(in4->sin_port);
            return AF_INET;
        }
        if (address.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
            if (inet_ntop(AF_INET6, &in6->sin6_addr, text, size) == NULL)
                return 0;
            *port = ntohs(in6->sin6_port);
            *flowinfo = ntohl(in6->sin6_flowinfo);
            *scope = in6->sin6_scope_id;
            return AF_INET6;
        }
        return 0;
    }
    /* The transport's own epoll set (one per listener, watched by the event loop as one file descriptor): a
       connection's readiness is dispatched in C, with no loop handle, callback object or Python call per event. */
    static int pyngress_epoll_ctl(int epfd, int op, int fd, unsigned int events) {
        struct epoll_event event;
        event.events = events;
        event.data.u64 = 0;
        event.data.fd = fd;
        return epoll_ctl(epfd, op, fd, &event);
    }
    static int pyngress_epoll_wait(int epfd, int *fds, unsigned int *events, int max) {
        struct epoll_event ready[64];
        int count, i;
        if (max > 64)
            max = 64;
        do {
            count = epoll_wait(epfd, ready, max, 0);
        } while (count < 0 && errno == EINTR);
        for (i = 0; i < count; i++) {
            fds[i] = ready[i].data.fd;
            events[i] = ready[i].events;
        }
        return count;
    }
    /* The last error is OpenSSL 3's "unexpected eof while reading" (ERR_LIB_SSL 20, SSL_R_UNEXPECTED_EOF_WHILE_READING
       294): a peer that closed without close_notify, an EOF; checked by number (no reason string per connection). */
    static int pyngress_unexpected_eof(void) {
        unsigned long code = ERR_peek_last_error();
        if (code == 0 || (code & 0x80000000UL))
            return 0;
        return ((code >> 23) & 0xFF) == 20 && (code & 0x7FFFFF) == 294;
    }
    static int pyngress_accept(int fd) {
        int one = 1;
        int conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (conn >= 0)
            setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return conn;
    }
    """
    ctypedef struct SSL
    ctypedef struct SSL_CTX
    SSL *SSL_new(SSL_CTX *ctx) nogil
    void SSL_free(SSL *ssl) nogil
    int SSL_set_fd(SSL *s, int fd) nogil
    void SSL_set_accept_state(SSL *s) nogil
    int SSL_do_handshake(SSL *s) nogil
    int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes) nogil
    int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written) nogil
    int SSL_pending(const SSL *s) nogil
    int SSL_get_error(const SSL *s, int ret_code) nogil
    int SSL_shutdown(SSL *s) nogil
    void SSL_set_quiet_shutdown(SSL *ssl, int mode) nogil
    long SSL_ctrl(SSL *ssl, int cmd, long larg, void *parg) nogil
    long SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg) nogil
    unsigned long SSL_CTX_get_options(const SSL_CTX *ctx) nogil
    const char *SSL_get_servername(const SSL *s, const int type) nogil
    SSL_CTX *SSL_set_SSL_CTX(SSL *ssl, SSL_CTX *ctx) nogil
    void SSL_get0_alpn_selected(const SSL *ssl, const unsigned char **data, unsigned int *len) nogil
    int SSL_session_reused(const SSL *s) nogil
    const char *SSL_get_version(const SSL *s) nogil
    int SSL_set_ex_data(SSL *ssl, int idx, void *data) nogil
    void *SSL_get_ex_data(const SSL *ssl, int idx) nogil
    unsigned long ERR_peek_last_error() nogil
    void ERR_clear_error() nogil
    const char *ERR_reason_error_string(unsigned long e) nogil
    int SSL_ERROR_NONE "PYNGRESS_SSL_ERROR_NONE"
    int SSL_ERROR_SSL "PYNGRESS_SSL_ERROR_SSL"
    int SSL_ERROR_WANT_READ "PYNGRESS_SSL_ERROR_WANT_READ"
    int SSL_ERROR_WANT_WRITE "PYNGRESS_SSL_ERROR_WANT_WRITE"
    int SSL_ERROR_SYSCALL "PYNGRESS_SSL_ERROR_SYSCALL"
    int SSL_ERROR_ZERO_RETURN "PYNGRESS_SSL_ERROR_ZERO_RETURN"
    int SSL_CTRL_MODE "PYNGRESS_SSL_CTRL_MODE"
    long OUR_SSL_MODE "PYNGRESS_SSL_MODE"
    ctypedef struct X509
    X509 *SSL_get1_peer_certificate(const SSL *s) nogil
    int i2d_X509(X509 *a, unsigned char **out) nogil
    void X509_free(X509 *a) nogil
    void CRYPTO_free(void *ptr, const char *file, int line) nogil
    ctypedef int (*servername_cb)(SSL *, int *, void *) noexcept
    long set_servername_cb "pyngress_set_servername_cb"(SSL_CTX *ctx, servername_cb cb, void *arg)
    double monotonic "pyngress_monotonic"() nogil
    int c_accept "pyngress_accept"(int fd) nogil
    void c_drain "pyngress_drain"(int fd) nogil
    int c_address "pyngress_address"(int fd, int peer, char *text, size_t size, int *port, unsigned int *flowinfo,
                                     unsigned int *scope) nogil
    int AF_INET
    int AF_INET6
    int c_close "close"(int fd) nogil
    int epoll_create1(int flags) nogil
    int EPOLL_CLOEXEC
    unsigned int EPOLLIN
    unsigned int EPOLLOUT
    unsigned int EPOLLERR
    unsigned int EPOLLHUP
    int EPOLL_CTL_ADD
    int EPOLL_CTL_MOD
    int EPOLL_CTL_DEL
    int c_epoll_ctl "pyngress_epoll_ctl"(int epfd, int op, int fd, unsigned int events) nogil
    int c_epoll_wait "pyngress_epoll_wait"(int epfd, int *fds, unsigned int *events, int max) nogil
    int unexpected_eof "pyngress_unexpected_eof"() nogil
