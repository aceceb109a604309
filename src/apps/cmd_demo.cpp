#include "apps/options.hpp"

namespace roam::apps {
int run_demo(const std::string&, const std::string&, const std::string&, int) { return 0; }
}  // namespace roam::apps
