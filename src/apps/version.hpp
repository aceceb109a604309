// What `roam --version` prints: the release, the git revision it was built from, the protocol.
#pragma once

#include <string>

namespace roam::apps {

// "roam 0.1.0 (git 8f1e05c3ab12), protocol version 1"; the revision is read at build time and
// is "unknown" outside a git checkout.
std::string version_text();

}  // namespace roam::apps
