using Sandbox.Runtime.Network;

namespace Sandbox.UnitTests;

public class PortForwardPlanningTests
{
    [Fact]
    public void The_original_port_is_read_from_a_sockaddr_in_in_network_order()
    {
        // struct sockaddr_in { sa_family_t AF_INET = 2; in_port_t 8080 (0x1f90, big-endian); in_addr 127.0.0.1; zero[8] }
        byte[] sockaddr = [2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        Assert.Equal(8080, PodPortForwarder.OriginalPort(sockaddr));
    }

    [Fact]
    public void The_redirect_rule_sends_tcp_to_127_0_0_1_to_the_listener_and_is_added_checked_and_deleted_alike()
    {
        var add = LoopbackRedirectRule.Add();
        Assert.Equal("iptables", add.Program);
        Assert.Equal("iptables", add.Package);
        string text = add.ToString();
        Assert.Contains("-t nat -A OUTPUT -p tcp -d 127.0.0.1/32", text);
        Assert.Contains($"-j REDIRECT --to-ports {LoopbackRedirectRule.ListenerPort}", text);
        Assert.Equal(text.Replace(" -A ", " -C "), LoopbackRedirectRule.Check().ToString());
        Assert.Equal(text.Replace(" -A ", " -D "), LoopbackRedirectRule.Delete().ToString());
    }
}
