// hb_tool: the record stream, the network changer and the packet observer of the handover
// benchmark (bench/handover/handover_bench.sh). Not part of the CMake build: the script compiles
// it with `g++ -O2 -std=c++20 hb_tool.cpp -lmnl -pthread`.
//
//   hb_tool send --listen ADDR:PORT [--mptcp] [--rate N] [--size B]
//       Server side. Accepts connections (one sender thread each) and sends records of B bytes
//       (default 64) at N per second (default 1000): "HBRC", u32 size, u64 seq, u64 send time
//       (CLOCK_REALTIME ns), filler. Whatever the peer sends is read and dropped.
//
//   hb_tool run --connect ADDR:PORT --mode bbm|mbb|mbb-backup|outage --count N --csv FILE
//               --system NAME [--mptcp] [--endpoints] [--gap-ms G] [--overlap-ms O]
//               [--settle-ms S] [--bound-ms B] [--outage-ms L]
//               [--outage-start CMD --outage-stop CMD]
//               [--ep-flags subflow[,fullmesh,...]] [--ep-order route|addr|resync]
//               [--ep-defer-del 1|0] [--ep-del-wait-ms W] [--ep-follow-metric 1|0]
//               [--ep-promote 1|0]
//       Mobile side, run inside the mobile host's namespace (interfaces "wifi" 198.18.1.2/24 via
//       198.18.1.1 and "cell" 198.18.2.2/24 via 198.18.2.1). Receives the record stream (a
//       receiver thread logs every record's arrival), changes the network itself over rtnetlink
//       (so that the "new address usable" instant is taken right after the kernel acknowledged
//       the route) and watches every TCP segment on wifi and cell with an AF_PACKET socket
//       (kernel timestamps), so that it knows which record first travelled on the new path and
//       where the time went (SYN, SYN-ACK, the first payload exchanges). With --endpoints it
//       also plays mptcpd driving the in-kernel path manager: an MPTCP endpoint (`subflow`) for
//       each address once its route is in, deleted when the address goes, with the --ep-* policy
//       choices described in cmd_run. Errors from the path manager are printed. Writes one CSV
//       row per handover.
//
//   Modes (each handover alternates wifi→cell, cell→wifi):
//     bbm         remove the old route+address, wait G ms, add the new address+route  (T0 = after
//                 the route is in); latency = first record delivered on the new path − T0
//     mbb         add the new address+route with a better metric than the old one (T0), wait O ms
//                 while both work, remove the old; latency from T0; stall over the whole change
//     mbb-backup  add the new address+route with a worse metric (it is a backup), wait O ms,
//                 remove the old (T1); latency = first record on the new path − T1
//     outage      no address change: run CMD to drop everything at the router, wait L ms, run
//                 the stop CMD (T0 = when it returned); latency = first record delivered − T0
//
// All namespaces share one kernel clock, so the sender's, receiver's, and packet timestamps are
// comparable (CLOCK_REALTIME).
#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/mptcp.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

constexpr int kMptcp = 262;  // IPPROTO_MPTCP
constexpr char kMagic[4] = {'H', 'B', 'R', 'C'};

std::int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "hb_tool: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

sockaddr_in parse_addr(const std::string& s) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  const auto c = s.rfind(':');
  if (c == std::string::npos) die("bad address " + s);
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoi(s.substr(c + 1))));
  if (inet_pton(AF_INET, s.substr(0, c).c_str(), &a.sin_addr) != 1) die("bad address " + s);
  return a;
}

std::map<std::string, std::string> parse_flags(int argc, char** argv, int from) {
  std::map<std::string, std::string> f;
  for (int i = from; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) die("unexpected argument " + k);
    k = k.substr(2);
    if (k == "mptcp" || k == "endpoints") {  // switches; every other flag takes a value
      f[k] = "1";
      continue;
    }
    if (i + 1 >= argc) die("missing value for --" + k);
    f[k] = argv[++i];
  }
  return f;
}

std::string get(const std::map<std::string, std::string>& f, const std::string& k,
                const std::string& def) {
  auto it = f.find(k);
  return it == f.end() ? def : it->second;
}

// --- sender --------------------------------------------------------------------------------

void send_records(int fd, int rate, int size) {
  std::vector<char> rec(static_cast<std::size_t>(size), 'x');
  std::memcpy(rec.data(), kMagic, 4);
  const std::uint32_t sz = static_cast<std::uint32_t>(size);
  std::memcpy(rec.data() + 4, &sz, 4);
  std::thread drain([fd] {
    char buf[4096];
    while (::recv(fd, buf, sizeof buf, 0) > 0) {
    }
  });
  drain.detach();
  timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  const long step = 1000000000L / rate;
  for (std::uint64_t seq = 0;; ++seq) {
    next.tv_nsec += step;
    while (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      ++next.tv_sec;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr);
    const std::int64_t t = now_ns();
    std::memcpy(rec.data() + 8, &seq, 8);
    std::memcpy(rec.data() + 16, &t, 8);
    std::size_t off = 0;
    while (off < rec.size()) {
      const ssize_t n = ::send(fd, rec.data() + off, rec.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        ::close(fd);
        return;
      }
      off += static_cast<std::size_t>(n);
    }
    // After a blocked send (the path was down), do not burst the backlog: resume the pace now.
    timespec cur;
    clock_gettime(CLOCK_MONOTONIC, &cur);
    if (cur.tv_sec > next.tv_sec + 1) next = cur;
  }
}

int cmd_send(const std::map<std::string, std::string>& f) {
  const sockaddr_in a = parse_addr(get(f, "listen", ""));
  const int rate = std::stoi(get(f, "rate", "1000"));
  const int size = std::max(32, std::stoi(get(f, "size", "64")));
  const int lfd = ::socket(AF_INET, SOCK_STREAM, f.count("mptcp") ? kMptcp : 0);
  if (lfd < 0) die("socket");
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(lfd, reinterpret_cast<const sockaddr*>(&a), sizeof a) < 0) die("bind");
  if (::listen(lfd, 16) < 0) die("listen");
  std::fprintf(stderr, "listening on %s\n", get(f, "listen", "").c_str());
  for (;;) {
    const int fd = ::accept(lfd, nullptr, nullptr);
    if (fd < 0) {
      if (errno == EINTR) continue;
      die("accept");
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread(send_records, fd, rate, size).detach();
  }
}

// --- netlink: addresses, routes, MPTCP endpoints -------------------------------------------

struct Netlink {
  mnl_socket* rt = nullptr;
  mnl_socket* gen = nullptr;
  mnl_socket* events = nullptr;
  unsigned seq = 0;
  std::uint16_t mptcp_family = 0;

  void open() {
    rt = mnl_socket_open(NETLINK_ROUTE);
    if (!rt || mnl_socket_bind(rt, 0, MNL_SOCKET_AUTOPID) < 0) die("rtnetlink");
  }

  // Sends one request and waits for its acknowledgement. Returns 0 or -errno.
  int talk(mnl_socket* s, nlmsghdr* h, mnl_cb_t cb = nullptr, void* data = nullptr) {
    h->nlmsg_flags |= NLM_F_ACK;
    h->nlmsg_seq = ++seq;
    if (mnl_socket_sendto(s, h, h->nlmsg_len) < 0) return -errno;
    char buf[16384];
    for (;;) {
      const ssize_t n = mnl_socket_recvfrom(s, buf, sizeof buf);
      if (n < 0) return -errno;
      const int r = mnl_cb_run(buf, static_cast<size_t>(n), h->nlmsg_seq, mnl_socket_get_portid(s),
                               cb, data);
      if (r < 0) return -errno;
      if (r == MNL_CB_STOP) return 0;
    }
  }

  int addr(bool add, const std::string& ifname, const std::string& ip, int plen) {
    char buf[512];
    nlmsghdr* h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
    h->nlmsg_flags = NLM_F_REQUEST | (add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
    auto* m = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(h, sizeof(ifaddrmsg)));
    m->ifa_family = AF_INET;
    m->ifa_prefixlen = static_cast<unsigned char>(plen);
    m->ifa_scope = RT_SCOPE_UNIVERSE;
    m->ifa_index = if_nametoindex(ifname.c_str());
    in_addr a{};
    inet_pton(AF_INET, ip.c_str(), &a);
    mnl_attr_put_u32(h, IFA_LOCAL, a.s_addr);
    mnl_attr_put_u32(h, IFA_ADDRESS, a.s_addr);
    return talk(rt, h);
  }

  int default_route(bool add, const std::string& ifname, const std::string& gw, std::uint32_t metric) {
    char buf[512];
    nlmsghdr* h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
    h->nlmsg_flags = NLM_F_REQUEST | (add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
    auto* r = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(h, sizeof(rtmsg)));
    r->rtm_family = AF_INET;
    r->rtm_table = RT_TABLE_MAIN;
    r->rtm_protocol = RTPROT_BOOT;
    r->rtm_scope = RT_SCOPE_UNIVERSE;
    r->rtm_type = RTN_UNICAST;
    in_addr g{};
    inet_pton(AF_INET, gw.c_str(), &g);
    mnl_attr_put_u32(h, RTA_GATEWAY, g.s_addr);
    mnl_attr_put_u32(h, RTA_OIF, if_nametoindex(ifname.c_str()));
    mnl_attr_put_u32(h, RTA_PRIORITY, metric);
    return talk(rt, h);
  }

  struct Family {
    std::uint16_t id = 0;
    std::uint32_t events_group = 0;  // MPTCP_PM_EV_GRP_NAME
  };
  static int family_cb(const nlmsghdr* h, void* data) {
    mnl_attr_parse(h, sizeof(genlmsghdr), [](const nlattr* a, void* d) -> int {
      auto* fam = static_cast<Family*>(d);
      if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID) fam->id = mnl_attr_get_u16(a);
      if (mnl_attr_get_type(a) != CTRL_ATTR_MCAST_GROUPS) return MNL_CB_OK;
      mnl_attr_parse_nested(a, [](const nlattr* grp, void* d2) -> int {
        struct Grp { const char* name = nullptr; std::uint32_t id = 0; } g;
        mnl_attr_parse_nested(grp, [](const nlattr* x, void* d3) -> int {
          auto* g3 = static_cast<Grp*>(d3);
          if (mnl_attr_get_type(x) == CTRL_ATTR_MCAST_GRP_NAME) g3->name = mnl_attr_get_str(x);
          if (mnl_attr_get_type(x) == CTRL_ATTR_MCAST_GRP_ID) g3->id = mnl_attr_get_u32(x);
          return MNL_CB_OK;
        }, &g);
        if (g.name && std::strcmp(g.name, MPTCP_PM_EV_GRP_NAME) == 0) static_cast<Family*>(d2)->events_group = g.id;
        return MNL_CB_OK;
      }, fam);
      return MNL_CB_OK;
    }, data);
    return MNL_CB_OK;
  }

  bool open_mptcp() {
    gen = mnl_socket_open(NETLINK_GENERIC);
    if (!gen || mnl_socket_bind(gen, 0, MNL_SOCKET_AUTOPID) < 0) return false;
    char buf[512];
    nlmsghdr* h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = GENL_ID_CTRL;
    h->nlmsg_flags = NLM_F_REQUEST;
    auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(h, sizeof(genlmsghdr)));
    g->cmd = CTRL_CMD_GETFAMILY;
    g->version = 1;
    mnl_attr_put_strz(h, CTRL_ATTR_FAMILY_NAME, MPTCP_PM_NAME);
    Family fam;
    if (talk(gen, h, family_cb, &fam) != 0 || fam.id == 0) return false;
    mptcp_family = fam.id;
    // The path manager's events (what mptcpd's plugins are told): subflow established etc.
    events = mnl_socket_open(NETLINK_GENERIC);
    if (!events || mnl_socket_bind(events, 0, MNL_SOCKET_AUTOPID) < 0) return false;
    int grp = static_cast<int>(fam.events_group);
    return mnl_socket_setsockopt(events, NETLINK_ADD_MEMBERSHIP, &grp, sizeof grp) == 0;
  }

  // Forgets the events received so far.
  void drain_events() {
    char buf[8192];
    for (pollfd p{mnl_socket_get_fd(events), POLLIN, 0}; ::poll(&p, 1, 0) > 0;)
      if (mnl_socket_recvfrom(events, buf, sizeof buf) <= 0) break;
  }

  // Waits up to `ms` for MPTCP_EVENT_SUB_ESTABLISHED of a subflow from `ip`. True if seen.
  bool wait_subflow(const std::string& ip, double ms) {
    in_addr want{};
    inet_pton(AF_INET, ip.c_str(), &want);
    const std::int64_t end = now_ns() + static_cast<std::int64_t>(ms * 1e6);
    char buf[8192];
    for (std::int64_t left; (left = end - now_ns()) > 0;) {
      pollfd p{mnl_socket_get_fd(events), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left / 1000000) + 1) <= 0) continue;
      const ssize_t n = mnl_socket_recvfrom(events, buf, sizeof buf);
      if (n <= 0) continue;
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf); mnl_nlmsg_ok(h, len); h = mnl_nlmsg_next(h, &len)) {
        if (h->nlmsg_type != mptcp_family) continue;
        auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_get_payload(h));
        if (g->cmd != MPTCP_EVENT_SUB_ESTABLISHED) continue;
        std::uint32_t saddr = 0;
        mnl_attr_parse(h, sizeof(genlmsghdr), [](const nlattr* a, void* d) -> int {
          if (mnl_attr_get_type(a) == MPTCP_ATTR_SADDR4) *static_cast<std::uint32_t*>(d) = mnl_attr_get_u32(a);
          return MNL_CB_OK;
        }, &saddr);
        if (saddr == want.s_addr) return true;
      }
    }
    return false;
  }

  // One mptcp_pm request with an address nest; returns 0 or -errno.
  int pm_request(std::uint8_t cmd, std::uint8_t id, const char* ip, const char* ifname, int flags) {
    char buf[512];
    nlmsghdr* h = mnl_nlmsg_put_header(buf);
    h->nlmsg_type = mptcp_family;
    h->nlmsg_flags = NLM_F_REQUEST;
    auto* g = static_cast<genlmsghdr*>(mnl_nlmsg_put_extra_header(h, sizeof(genlmsghdr)));
    g->cmd = cmd;
    g->version = MPTCP_PM_VER;
    nlattr* nest = mnl_attr_nest_start(h, MPTCP_PM_ATTR_ADDR);
    mnl_attr_put_u8(h, MPTCP_PM_ADDR_ATTR_ID, id);
    // The family only with an address: the kernel refuses a family without one (EINVAL, "missing
    // address data"), which made every endpoint delete of the first version of this tool fail.
    if (ip) {
      in_addr a{};
      inet_pton(AF_INET, ip, &a);
      mnl_attr_put_u16(h, MPTCP_PM_ADDR_ATTR_FAMILY, AF_INET);
      mnl_attr_put_u32(h, MPTCP_PM_ADDR_ATTR_ADDR4, a.s_addr);
    }
    if (ifname) mnl_attr_put_u32(h, MPTCP_PM_ADDR_ATTR_IF_IDX, if_nametoindex(ifname));
    if (flags >= 0) mnl_attr_put_u32(h, MPTCP_PM_ADDR_ATTR_FLAGS, static_cast<std::uint32_t>(flags));
    mnl_attr_nest_end(h, nest);
    return talk(gen, h);
  }
  // `ip mptcp endpoint add IP dev IF id ID FLAGS` (flags: MPTCP_PM_ADDR_FLAG_*)
  int endpoint_add(std::uint8_t id, const std::string& ip, const std::string& ifname, int flags) {
    return pm_request(MPTCP_PM_CMD_ADD_ADDR, id, ip.c_str(), ifname.c_str(), flags);
  }
  // `ip mptcp endpoint delete id ID`: closes the connections' subflows from that address (the
  // initial one too, its id 0 standing for the endpoint) and sends RM_ADDR to the peers.
  int endpoint_del(std::uint8_t id) { return pm_request(MPTCP_PM_CMD_DEL_ADDR, id, nullptr, nullptr, -1); }
  // `ip mptcp endpoint change id ID [no]backup`: MP_PRIO on the subflows from that address.
  int endpoint_backup(std::uint8_t id, bool backup) {
    return pm_request(MPTCP_PM_CMD_SET_FLAGS, id, nullptr, nullptr, backup ? MPTCP_PM_ADDR_FLAG_BACKUP : 0);
  }
};

// --- the packet observer -------------------------------------------------------------------

struct Seg {
  std::int64_t t;       // kernel timestamp (CLOCK_REALTIME ns)
  int ifindex;
  bool out;             // sent by the mobile host
  std::uint32_t local;  // mobile host's address (network order)
  std::uint16_t lport, rport;
  std::uint8_t flags;   // TCP flags
  std::uint32_t len;    // TCP payload bytes
  std::int64_t first_seq;  // first complete record magic found in the payload, else -1
  std::int64_t first_sent; // that record's send time (tells one connection's records from another's)
};

struct Observer {
  std::mutex mu;
  std::vector<Seg> segs;
  std::atomic<bool> stop{false};
  int fd = -1;
  std::map<int, std::string> ifnames;

  void start(const std::vector<std::string>& names) {
    for (const auto& n : names) ifnames[static_cast<int>(if_nametoindex(n.c_str()))] = n;
    fd = ::socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL));  // ETH_P_ALL: outgoing too
    if (fd < 0) die("AF_PACKET socket");
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    int rcv = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof rcv);
    std::thread([this] { loop(); }).detach();
  }

  void loop() {
    std::vector<std::uint8_t> buf(70000);
    char ctrl[256];
    while (!stop) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      sockaddr_ll from{};
      iovec iov{buf.data(), buf.size()};
      msghdr m{};
      m.msg_name = &from;
      m.msg_namelen = sizeof from;
      m.msg_iov = &iov;
      m.msg_iovlen = 1;
      m.msg_control = ctrl;
      m.msg_controllen = sizeof ctrl;
      const ssize_t n = ::recvmsg(fd, &m, 0);
      if (n <= 0) continue;
      if (!ifnames.count(from.sll_ifindex) || from.sll_protocol != htons(ETH_P_IP)) continue;
      const std::int64_t now = now_ns();
      std::int64_t t = now;
      for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS) {
          timespec ts;
          std::memcpy(&ts, CMSG_DATA(c), sizeof ts);
          t = std::int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
        }
      // Outgoing TCP segments carry their departure time in another clock (EDT, CLOCK_MONOTONIC):
      // then the arrival here is the best we have.
      if (t > now || t < now - 100000000) t = now;
      if (n < 20) continue;
      const auto* ip = reinterpret_cast<const iphdr*>(buf.data());
      if (ip->protocol != IPPROTO_TCP) continue;
      const std::size_t ihl = ip->ihl * 4u;
      const std::size_t tot = std::min<std::size_t>(ntohs(ip->tot_len), static_cast<std::size_t>(n));
      if (tot < ihl + 20) continue;
      const auto* tcp = reinterpret_cast<const tcphdr*>(buf.data() + ihl);
      const std::size_t thl = tcp->doff * 4u;
      if (tot < ihl + thl) continue;
      Seg s{};
      s.t = t;
      s.ifindex = from.sll_ifindex;
      s.out = from.sll_pkttype == PACKET_OUTGOING;
      s.local = s.out ? ip->saddr : ip->daddr;
      s.lport = ntohs(s.out ? tcp->source : tcp->dest);
      s.rport = ntohs(s.out ? tcp->dest : tcp->source);
      s.flags = buf[ihl + 13];
      s.len = static_cast<std::uint32_t>(tot - ihl - thl);
      s.first_seq = -1;
      const std::uint8_t* pl = buf.data() + ihl + thl;
      for (std::size_t i = 0; i + 24 <= s.len; ++i)
        if (std::memcmp(pl + i, kMagic, 4) == 0) {
          std::uint64_t seq;
          std::memcpy(&seq, pl + i + 8, 8);
          std::memcpy(&s.first_sent, pl + i + 16, 8);
          s.first_seq = static_cast<std::int64_t>(seq);
          break;
        }
      std::lock_guard<std::mutex> g(mu);
      segs.push_back(s);
    }
  }

  std::vector<Seg> between(std::int64_t a, std::int64_t b) {
    std::lock_guard<std::mutex> g(mu);
    std::vector<Seg> out;
    for (const auto& s : segs)
      if (s.t >= a && s.t <= b) out.push_back(s);
    // Forget what is older than what we will ever ask for again.
    segs.erase(std::remove_if(segs.begin(), segs.end(), [&](const Seg& s) { return s.t < a - 2000000000LL; }),
               segs.end());
    return out;
  }
};

// --- the receiver --------------------------------------------------------------------------

struct Arrival {
  std::int64_t t;      // arrival at the application (CLOCK_REALTIME ns)
  std::uint64_t seq;
  std::int64_t sent;
};

struct Receiver {
  std::mutex mu;
  std::vector<Arrival> log;
  std::atomic<std::int64_t> error_at{0};
  std::string error_text;
  std::atomic<bool> done{false};
  int fd = -1;
  std::uint64_t dups = 0, holes = 0;

  bool connect_to(const sockaddr_in& a, bool mptcp) {
    fd = ::socket(AF_INET, SOCK_STREAM, mptcp ? kMptcp : 0);
    if (fd < 0) die("socket");
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) < 0) {
      ::close(fd);
      fd = -1;
      return false;
    }
    std::thread([this] { loop(); }).detach();
    return true;
  }

  void loop() {
    std::vector<std::uint8_t> buf(1 << 16);
    std::size_t have = 0;
    std::optional<std::uint64_t> last;
    for (;;) {
      const ssize_t n = ::recv(fd, buf.data() + have, buf.size() - have, 0);
      const std::int64_t t = now_ns();
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        std::lock_guard<std::mutex> g(mu);
        error_text = n == 0 ? "end of stream" : std::strerror(errno);
        error_at = t;
        done = true;
        return;
      }
      have += static_cast<std::size_t>(n);
      std::size_t off = 0;
      std::lock_guard<std::mutex> g(mu);
      while (have - off >= 24) {
        std::uint32_t size;
        std::memcpy(&size, buf.data() + off + 4, 4);
        if (std::memcmp(buf.data() + off, kMagic, 4) != 0 || size < 24 || size > 4096) {
          error_text = "corrupt stream";
          error_at = t;
          done = true;
          return;
        }
        if (have - off < size) break;
        Arrival a{};
        a.t = t;
        std::memcpy(&a.seq, buf.data() + off + 8, 8);
        std::memcpy(&a.sent, buf.data() + off + 16, 8);
        if (last && a.seq <= *last) ++dups;
        if (last && a.seq > *last + 1) holes += a.seq - *last - 1;
        last = a.seq;
        log.push_back(a);
        off += size;
      }
      std::memmove(buf.data(), buf.data() + off, have - off);
      have -= off;
    }
  }

  std::vector<Arrival> snapshot() {
    std::lock_guard<std::mutex> g(mu);
    return log;
  }
  std::optional<Arrival> first_after(std::int64_t t) {
    std::lock_guard<std::mutex> g(mu);
    for (auto it = log.rbegin(); it != log.rend(); ++it)
      if (it->t < t) {
        if (it == log.rbegin()) return std::nullopt;
        return *(it - 1);
      }
    if (!log.empty() && log.front().t >= t) return log.front();
    return std::nullopt;
  }
  // The arrival of the record with this sequence number and send time, if this connection had it.
  std::optional<Arrival> by_seq(std::uint64_t seq, std::int64_t sent) {
    std::lock_guard<std::mutex> g(mu);
    for (auto it = log.rbegin(); it != log.rend(); ++it)
      if (it->seq == seq) {
        if (it->sent == sent) return *it;
        return std::nullopt;
      }
    return std::nullopt;
  }
  bool sent_by_us(std::uint64_t seq, std::int64_t sent) {
    // A record of this connection: either already logged, or newer than anything logged and sent
    // after the connection began (a stale connection's retransmission fails both).
    std::lock_guard<std::mutex> g(mu);
    if (log.empty()) return false;
    for (auto it = log.rbegin(); it != log.rend(); ++it)
      if (it->seq == seq) return it->sent == sent;
    return seq > log.back().seq && sent >= log.back().sent;
  }
};

// --- the handover runner -------------------------------------------------------------------

struct Iface {
  std::string name, ip, gw;
  std::uint8_t endpoint_id;
  std::uint32_t metric;  // for bbm (the test bed's: Wi-Fi preferred)
};

void sleep_ms(double ms) {
  timespec ts{static_cast<time_t>(ms / 1000), static_cast<long>(std::fmod(ms, 1000.0) * 1e6)};
  nanosleep(&ts, nullptr);
}

double ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

std::int64_t run_command(const std::string& cmd) {
  pid_t pid;
  const char* argv[] = {"/bin/sh", "-c", cmd.c_str(), nullptr};
  if (posix_spawn(&pid, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ) != 0)
    die("spawn " + cmd);
  int st;
  waitpid(pid, &st, 0);
  return now_ns();
}

std::string fmt(double v) {
  if (std::isnan(v)) return "";
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

int cmd_run(const std::map<std::string, std::string>& f) {
  const sockaddr_in target = parse_addr(get(f, "connect", ""));
  const bool mptcp = f.count("mptcp");
  const bool endpoints = f.count("endpoints");
  const std::string mode = get(f, "mode", "bbm");
  const std::string system = get(f, "system", "?");
  const int count = std::stoi(get(f, "count", "30"));
  const double gap = std::stod(get(f, "gap-ms", "100"));
  const double overlap = std::stod(get(f, "overlap-ms", "500"));
  const double settle = std::stod(get(f, "settle-ms", "600"));
  const double bound = std::stod(get(f, "bound-ms", "5000"));
  const double outage_len = std::stod(get(f, "outage-ms", "5000"));
  const std::string csv_path = get(f, "csv", "/dev/stdout");
  FILE* csv = std::fopen(csv_path.c_str(), "a");
  if (!csv) die("open " + csv_path);

  Iface wifi{"wifi", "198.18.1.2", "198.18.1.1", 1, 100};
  Iface cell{"cell", "198.18.2.2", "198.18.2.1", 2, 200};

  Netlink nl;
  nl.open();
  if (endpoints && !nl.open_mptcp()) {
    std::fprintf(stderr, "hb_tool: MPTCP path manager (genetlink %s) unavailable\n", MPTCP_PM_NAME);
    return 4;
  }
  // Start from a known state: Wi-Fi up (the test bed's metric), cellular down.
  nl.default_route(false, "cell", cell.gw, cell.metric);
  nl.addr(false, "cell", cell.ip, 24);
  nl.addr(true, "wifi", wifi.ip, 24);
  nl.default_route(true, "wifi", wifi.gw, wifi.metric);
  // The mptcpd stand-in (--endpoints). mptcpd's in-kernel path-manager plugin turns each address
  // notification into an endpoint (--addr-flags, here --ep-flags) and deletes the endpoint when
  // the address goes. --ep-order says when the endpoint is added:
  //   route   once a default route through the interface exists (mptcpd --notify-flags
  //           check_route, mptcpd issue #170): the subflow is created when it can be routed;
  //   addr    as soon as the address appears, before the route (mptcpd without check_route, as
  //           Debian ships it): the kernel tries the join at once and never retries a failure;
  //   resync  as addr, then deleted and added again once the route is in.
  // In mbb-backup the new endpoint is a backup one (the network is a backup), and once the
  // preferred one has gone the remaining endpoint is promoted (`change id N nobackup`, an MP_PRIO
  // to the server) unless --ep-promote 0, so each handover again moves from a primary to a backup.
  // In mbb (a better network appears) the old endpoint is demoted to backup (`change id N
  // backup`) once the new one is in, unless --ep-follow-metric 0: MPTCP's scheduler ignores route
  // metrics and would otherwise keep sending on the old path until it goes, as it has no reason
  // to prefer the new one.
  // When an address goes while no other path is up (bbm), the endpoint is kept until the next
  // path's subflow is established and deleted then, unless --ep-defer-del 0: deleted at once,
  // as mptcpd does, the kernel sends the RM_ADDR over the dead subflow and it is lost, so the
  // server learns nothing, keeps the dead subflow and resends what was in flight on it only when
  // its MPTCP retransmission timer fires, backed off by the outage (0.2-3 s measured); deleted
  // once the new subflow exists, the RM_ADDR reaches the server, which closes the dead subflow
  // and resends its data on the new one at once.
  const std::string ep_order = get(f, "ep-order", "route");
  if (ep_order != "route" && ep_order != "addr" && ep_order != "resync") die("bad --ep-order " + ep_order);
  const bool ep_promote = get(f, "ep-promote", "1") == "1";
  const bool ep_follow_metric = get(f, "ep-follow-metric", "1") == "1";
  const bool ep_defer_del = get(f, "ep-defer-del", "1") == "1";
  const double ep_del_wait = std::stod(get(f, "ep-del-wait-ms", "1"));
  const Iface* ep_pending_del = nullptr;  // an endpoint whose address is gone, kept for now
  int ep_flags = 0;
  {
    const std::string list = get(f, "ep-flags", "subflow") + ",";
    for (std::size_t a = 0, b; (b = list.find(',', a)) != std::string::npos; a = b + 1) {
      const std::string w = list.substr(a, b - a);
      if (w == "subflow") ep_flags |= MPTCP_PM_ADDR_FLAG_SUBFLOW;
      else if (w == "signal") ep_flags |= MPTCP_PM_ADDR_FLAG_SIGNAL;
      else if (w == "backup") ep_flags |= MPTCP_PM_ADDR_FLAG_BACKUP;
      else if (w == "fullmesh") ep_flags |= MPTCP_PM_ADDR_FLAG_FULLMESH;
      else if (!w.empty()) die("bad --ep-flags " + w);
    }
  }
  auto ep_report = [](const char* what, const Iface& i, int r) {
    if (r < 0) std::fprintf(stderr, "hb_tool: endpoint %s %s id %u: %s\n", what, i.ip.c_str(), i.endpoint_id, std::strerror(-r));
  };
  auto ep_add = [&](const Iface& i, bool backup) {
    ep_report("add", i, nl.endpoint_add(i.endpoint_id, i.ip, i.name, ep_flags | (backup ? MPTCP_PM_ADDR_FLAG_BACKUP : 0)));
  };
  auto ep_del = [&](const Iface& i) { ep_report("delete", i, nl.endpoint_del(i.endpoint_id)); };
  if (endpoints) {
    nl.endpoint_del(cell.endpoint_id);  // left over from an earlier run, or absent (EINVAL)
    nl.endpoint_del(wifi.endpoint_id);
    ep_add(wifi, false);
  }

  Observer obs;
  obs.start({"wifi", "cell"});

  auto rx = std::make_unique<Receiver>();
  std::vector<std::unique_ptr<Receiver>> old_rx;  // threads may still reference them
  auto connect_fresh = [&]() -> bool {
    for (int i = 0; i < 50; ++i) {
      auto r = std::make_unique<Receiver>();
      if (r->connect_to(target, mptcp)) {
        if (rx) old_rx.push_back(std::move(rx));
        rx = std::move(r);
        return true;
      }
      sleep_ms(100);
    }
    return false;
  };
  rx.reset();
  if (!connect_fresh()) die("connect");
  // Wait for the stream.
  for (int i = 0; i < 100 && rx->snapshot().size() < 200; ++i) sleep_ms(20);
  if (rx->snapshot().size() < 200) {
    std::fprintf(stderr, "hb_tool: no stream from the sender\n");
    return 1;
  }

  Iface* cur = &wifi;
  Iface* nxt = &cell;
  std::uint32_t mbb_metric = 1000;  // mbb: every new route is better than the one before it
  if (mode == "mbb") {
    // Re-install the current route with a metric the mbb sequence can go below.
    nl.default_route(true, cur->name, cur->gw, mbb_metric);
    nl.default_route(false, cur->name, cur->gw, cur->metric);
  } else if (mode == "mbb-backup") {
    mbb_metric = cur->metric;  // every new route is worse than the one before it
  }
  std::uint32_t cur_metric = (mode == "mbb" || mode == "mbb-backup") ? mbb_metric : cur->metric;

  for (int k = 1; k <= count; ++k) {
    sleep_ms(200 + (k * 37) % 100);  // steady stream before the change, phase varied
    std::int64_t t_break = 0, t0 = 0, t_ref = 0, t_start = now_ns();
    const std::string dir = mode == "outage" ? "same" : cur->name + "->" + nxt->name;
    std::uint32_t new_metric = nxt->metric;
    const bool backup = mode == "mbb-backup";
    auto add_new = [&] {
      if (endpoints) nl.drain_events();
      nl.addr(true, nxt->name, nxt->ip, 24);
      if (endpoints && ep_order != "route") ep_add(*nxt, backup);  // mptcpd reacting to the address
      int r = nl.default_route(true, nxt->name, nxt->gw, new_metric);
      t0 = now_ns();
      if (r < 0) std::fprintf(stderr, "hb_tool: route add: %s\n", std::strerror(-r));
      if (endpoints && ep_order == "resync") ep_del(*nxt);
      if (endpoints && ep_order != "addr") ep_add(*nxt, backup);  // ... to the route
      if (ep_pending_del) {
        // Once the new subflow is there (its SUB_ESTABLISHED event, as an mptcpd plugin is told,
        // plus --ep-del-wait-ms, 1 ms: the join carries the RM_ADDR only once the server has
        // acked its third ACK, a round trip after the event; deleted right after the add, the
        // RM_ADDR went out on the dead subflow in 4 of 10 handovers on a busy machine and the
        // server resent only after 40-500 ms).
        if (!nl.wait_subflow(nxt->ip, 500)) std::fprintf(stderr, "hb_tool: no subflow from %s within 500 ms\n", nxt->ip.c_str());
        sleep_ms(ep_del_wait);
        ep_del(*ep_pending_del);
      }
      ep_pending_del = nullptr;
      if (endpoints && mode == "mbb" && ep_follow_metric)
        ep_report("backup", *cur, nl.endpoint_backup(cur->endpoint_id, true));
    };
    auto remove_old = [&] {
      nl.default_route(false, cur->name, cur->gw, cur_metric);
      nl.addr(false, cur->name, cur->ip, 24);
      t_break = now_ns();
      // mptcpd reacting to the address's removal (in bbm no other path is up at this point)
      if (endpoints && mode == "bbm" && ep_defer_del) ep_pending_del = cur;
      else if (endpoints) ep_del(*cur);
      if (endpoints && backup && ep_promote) ep_report("nobackup", *nxt, nl.endpoint_backup(nxt->endpoint_id, false));
    };
    if (mode == "bbm") {
      remove_old();
      sleep_ms(gap);
      add_new();
      t_ref = t0;
    } else if (mode == "mbb" || mode == "mbb-backup") {
      new_metric = mode == "mbb" ? --mbb_metric : ++mbb_metric;
      add_new();
      sleep_ms(overlap);
      remove_old();
      t_ref = mode == "mbb" ? t0 : t_break;
    } else if (mode == "outage") {
      t_break = run_command(get(f, "outage-start", "false"));
      sleep_ms(outage_len);
      // The rule goes away somewhere while the command runs (nft's own start-up takes a few ms):
      // measure from when it started, which overstates the time to data flowing, never understates.
      const std::int64_t before = now_ns();
      t0 = run_command(get(f, "outage-stop", "false"));
      t_break = before - (t0 - before);  // the CSV's break_ms column then shows -(nft run time)
      t_ref = before;
      t0 = before;
    } else {
      die("unknown mode " + mode);
    }

    // Wait for the first record delivered on the new path (or the bound).
    const std::int64_t deadline = t_ref + static_cast<std::int64_t>(bound * 1e6);
    std::optional<Arrival> first;
    std::optional<Seg> first_pkt;
    const int new_if = static_cast<int>(if_nametoindex((mode == "outage" ? cur : nxt)->name.c_str()));
    in_addr new_ip{};
    inet_pton(AF_INET, (mode == "outage" ? cur : nxt)->ip.c_str(), &new_ip);
    const std::int64_t look_from = (mode == "outage") ? t0 - 20000000 : std::min(t0, t_break ? t_break : t0) - 1000000;
    while (now_ns() < deadline) {
      if (mode == "outage") {
        first = rx->first_after(t0 - 200000000);  // the first record after the drop
        if (first) break;
      } else {
        for (const auto& s : obs.between(look_from, now_ns()))
          if (!s.out && s.ifindex == new_if && s.local == new_ip.s_addr && s.first_seq >= 0 &&
              rx->sent_by_us(static_cast<std::uint64_t>(s.first_seq), s.first_sent)) {
            first_pkt = s;
            break;
          }
        if (first_pkt) {
          // The record that first travelled on the new path, as the application got it.
          for (int i = 0; i < 200 && !first; ++i) {
            first = rx->by_seq(static_cast<std::uint64_t>(first_pkt->first_seq), first_pkt->first_sent);
            if (!first) sleep_ms(1);
          }
          // It may have been delivered earlier over the old path (a retransmission racing):
          // then the first byte on the new path is the first arrival at or after the packet.
          if (first && first->t < first_pkt->t) first = rx->first_after(first_pkt->t);
          if (first) break;
        }
      }
      if (rx->done) break;
      sleep_ms(2);
    }
    const bool alive = first.has_value();
    sleep_ms(settle);

    // Stall: the longest any record spent between its sender and the application (arrival − send
    // time) among the records delivered from just before the change to now. Unlike the gap between
    // arrivals it does not count the sender's own scheduling hiccups on a busy machine (those are
    // reported separately as gap_ms).
    const std::int64_t win_a = std::min(t_start, t_break ? t_break : t_start) - 50000000;
    const std::int64_t win_b = now_ns();
    double stall = std::nan(""), gap_max = std::nan("");
    {
      auto log = rx->snapshot();
      std::int64_t prev = 0;
      double mx = 0, mg = 0;
      for (const auto& a : log) {
        if (a.t < win_a) {
          prev = a.t;
          continue;
        }
        if (a.t > win_b) break;
        mx = std::max(mx, ms(a.t - a.sent));
        if (prev) mg = std::max(mg, ms(a.t - prev));
        prev = a.t;
      }
      if (alive) {
        stall = mx;
        gap_max = mg;
      }
    }

    // Control: the same statistic over a window of the same length right after, with no change to
    // the network. Whatever it shows (a busy machine, the hypervisor, timer ticks) is not the
    // handover's doing; the summary prints both side by side.
    double ctl_stall = std::nan("");
    if (alive) {
      const std::int64_t len = win_b - win_a;
      sleep_ms(static_cast<int>(len / 1000000) + 1);
      const std::int64_t ctl_b = win_b + len;
      double mx = 0;
      for (const auto& a : rx->snapshot())
        if (a.t > win_b && a.t <= ctl_b) mx = std::max(mx, ms(a.t - a.sent));
      ctl_stall = mx;
    }

    // Where the time went: the new path's segments between T0 and the first record on it.
    double syn = std::nan(""), synack = std::nan(""), out1 = std::nan(""), in1 = std::nan(""),
           out2 = std::nan(""), in2 = std::nan(""), pkt = std::nan("");
    int conns = 0;
    if (first_pkt) {
      auto segs = obs.between(look_from, first_pkt->t);
      std::map<std::uint16_t, bool> ports;
      for (const auto& s : segs)
        if (s.ifindex == new_if && s.out && (s.flags & 0x02) && !(s.flags & 0x10) && s.local == new_ip.s_addr)
          ports[s.lport] = true;
      conns = static_cast<int>(ports.size());
      const std::uint16_t port = first_pkt->lport;
      int n_out = 0, n_in = 0;
      for (const auto& s : segs) {
        if (s.ifindex != new_if || s.lport != port) continue;
        const double d = ms(s.t - t_ref);
        if (s.out && (s.flags & 0x02) && std::isnan(syn)) syn = d;
        if (!s.out && (s.flags & 0x12) == 0x12 && std::isnan(synack)) synack = d;
        if (s.len > 0 && !(s.flags & 0x02)) {
          if (s.out) {
            if (n_out == 0) out1 = d;
            if (n_out == 1) out2 = d;
            ++n_out;
          } else {
            if (n_in == 0) in1 = d;
            if (n_in == 1) in2 = d;
            ++n_in;
          }
        }
      }
      pkt = ms(first_pkt->t - t_ref);
    }
    if (f.count("dump")) {
      FILE* d = std::fopen((get(f, "dump", "") + "/" + system + "-" + mode + "-" + std::to_string(k) + ".txt").c_str(), "w");
      if (d) {
        std::fprintf(d, "# t_ref=%.6f t0=%+.3f break=%+.3f (ms relative to t_ref)\n", t_ref / 1e9, ms(t0 - t_ref),
                     t_break ? ms(t_break - t_ref) : 0.0);
        for (const auto& s : obs.between(win_a, win_b))
          std::fprintf(d, "pkt %+10.3f %s %s %s:%u<->%u flags=%02x len=%u rec=%lld\n", ms(s.t - t_ref),
                       obs.ifnames[s.ifindex].c_str(), s.out ? "out" : "in ",
                       inet_ntoa(in_addr{s.local}), s.lport, s.rport, s.flags, s.len,
                       static_cast<long long>(s.first_seq));
        for (const auto& a : rx->snapshot())
          if (a.t >= win_a && a.t <= win_b)
            std::fprintf(d, "app %+10.3f seq=%llu sent=%+.3f\n", ms(a.t - t_ref),
                         static_cast<unsigned long long>(a.seq), ms(a.sent - t_ref));
        std::fclose(d);
      }
    }
    const double lat = first ? ms(first->t - t_ref) : std::nan("");
    double notice = std::nan("");
    if (!alive && rx->error_at) notice = ms(rx->error_at - t_ref);
    std::fprintf(csv, "%s,%s,%d,%s,%.6f,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%d,%s,%llu,%llu,%s\n",
                 system.c_str(), mode.c_str(), k, dir.c_str(), t_ref / 1e9, alive ? "ok" : "dies",
                 fmt(lat).c_str(), fmt(stall).c_str(), fmt(gap_max).c_str(),
                 fmt(t_break ? ms(t_break - t_ref) : std::nan("")).c_str(), fmt(syn).c_str(),
                 fmt(synack).c_str(), fmt(out1).c_str(), fmt(in1).c_str(), fmt(out2).c_str(),
                 fmt(in2).c_str(), conns, fmt(pkt).c_str(),
                 static_cast<unsigned long long>(rx->holes), static_cast<unsigned long long>(rx->dups),
                 fmt(ctl_stall).c_str());
    std::fflush(csv);
    std::fprintf(stderr, "%s %s #%d %s: %s latency %s ms, stall %s ms%s\n", system.c_str(), mode.c_str(),
                 k, dir.c_str(), alive ? "ok" : "DIES", fmt(lat).c_str(), fmt(stall).c_str(),
                 !alive ? (rx->error_at ? (" (app saw: " + rx->error_text + " at +" + fmt(notice) + " ms)").c_str()
                                        : " (app saw nothing)")
                        : "");

    if (mode != "outage") {
      std::swap(cur, nxt);
      cur_metric = new_metric;
    }
    if (!alive) {
      // The connection is gone (plain TCP) or hangs: start a fresh one from the current address.
      if (rx->fd >= 0) ::shutdown(rx->fd, SHUT_RDWR);
      if (!connect_fresh()) die("reconnect");
      for (int i = 0; i < 100 && rx->snapshot().size() < 100; ++i) sleep_ms(20);
    }
  }
  obs.stop = true;
  // Close while the address still exists, so that the sender learns of it (no stale connection
  // keeps retransmitting towards an address a later run brings back).
  if (rx && rx->fd >= 0) ::shutdown(rx->fd, SHUT_RDWR);
  sleep_ms(300);
  std::fclose(csv);
  // Leave the test bed as found: Wi-Fi up with its usual metric, cellular down.
  nl.default_route(false, cur->name, cur->gw, cur_metric);
  if (cur != &wifi) nl.addr(false, cur->name, cur->ip, 24);
  nl.addr(true, "wifi", wifi.ip, 24);
  nl.default_route(true, "wifi", wifi.gw, wifi.metric);
  if (endpoints) {
    nl.endpoint_del(cell.endpoint_id);
    nl.endpoint_del(wifi.endpoint_id);
  }
  _exit(0);  // detached threads still block in recv
}

// Median time of a TCP connect() (SYN to SYN-ACK: one round trip plus the stacks' work).
int cmd_rtt(const std::map<std::string, std::string>& f) {
  const sockaddr_in a = parse_addr(get(f, "connect", ""));
  const int n = std::stoi(get(f, "count", "50"));
  std::vector<double> v;
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    const std::int64_t t = now_ns();
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) v.push_back(ms(now_ns() - t));
    ::close(fd);
    sleep_ms(5);
  }
  if (v.empty()) die("connect");
  std::sort(v.begin(), v.end());
  std::printf("%.3f\n", v[v.size() / 2]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    std::fprintf(stderr, "usage: hb_tool send|run --flags (see the comment at the top)\n");
    return 2;
  }
  const std::string cmd = argv[1];
  const auto f = parse_flags(argc, argv, 2);
  if (cmd == "send") return cmd_send(f);
  if (cmd == "run") return cmd_run(f);
  if (cmd == "rtt") return cmd_rtt(f);
  std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 2;
}
