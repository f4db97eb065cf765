using Sandbox.Shim.Cli;

namespace Sandbox.Shim.Tests;

public class ShimFlagParserTests
{
    [Theory]
    [InlineData("-id", "../../etc")]
    [InlineData("-id", "a/b")]
    [InlineData("-namespace", "..")]
    [InlineData("-namespace", "k8s.io/x")]
    public void An_id_or_namespace_that_could_name_a_path_is_refused(string flag, string value)
    {
        var e = Assert.Throws<ShimUsageException>(() => ShimFlagParser.Parse([flag, value, "delete"]));
        Assert.Contains($"{flag} \"{value}\" is not valid", e.Message);
    }

    [Fact]
    public void Parses_the_start_command_line_of_containerd_1_6()
    {
        var flags = ShimFlagParser.Parse(new[]
        {
            "-namespace", "default", "-address", "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd",
            "-id", "p1", "-debug", "start",
        });

        Assert.Equal("default", flags.Namespace);
        Assert.Equal("/run/containerd/containerd.sock", flags.Address);
        Assert.Equal("/usr/bin/containerd", flags.PublishBinary);
        Assert.Equal("p1", flags.Id);
        Assert.True(flags.Debug);
        Assert.Equal("start", flags.Action);
    }

    [Fact]
    public void Parses_the_delete_command_line_with_bundle()
    {
        var flags = ShimFlagParser.Parse(new[]
        {
            "-namespace", "k8s.io", "-address", "/a.sock", "-publish-binary", "/usr/bin/containerd", "-id", "c1",
            "-bundle", "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1", "delete",
        });

        Assert.Equal("delete", flags.Action);
        Assert.Equal("/run/containerd/io.containerd.runtime.v2.task/k8s.io/c1", flags.Bundle);
        Assert.False(flags.Debug);
    }

    [Fact]
    public void No_positional_argument_means_the_daemon()
    {
        var flags = ShimFlagParser.Parse(new[] { "-namespace", "default", "-id", "p4", "-address", "/a.sock", "-socket", "/run/s/x" });
        Assert.Equal("", flags.Action);
        Assert.Equal("/run/s/x", flags.Socket);
    }

    [Fact]
    public void Accepts_double_dashes_and_equals_forms()
    {
        var flags = ShimFlagParser.Parse(new[] { "--namespace=ns1", "--id", "x", "-address=/a=b.sock", "--debug=false", "-v", "start" });

        Assert.Equal("ns1", flags.Namespace);
        Assert.Equal("x", flags.Id);
        Assert.Equal("/a=b.sock", flags.Address); // only the first '=' separates name and value
        Assert.False(flags.Debug);
        Assert.True(flags.Version);
        Assert.Equal("start", flags.Action);
    }

    [Fact]
    public void A_value_may_start_with_a_dash()
    {
        var flags = ShimFlagParser.Parse(new[] { "-bundle", "-weird", "delete" });
        Assert.Equal("-weird", flags.Bundle);
        Assert.Equal("delete", flags.Action);
    }

    [Fact]
    public void Parsing_stops_at_the_action_and_at_double_dash()
    {
        Assert.Equal("start", ShimFlagParser.Parse(new[] { "-id", "a", "start", "-namespace", "ignored" }).Action);
        Assert.Equal("delete", ShimFlagParser.Parse(new[] { "-id", "a", "--", "delete" }).Action);
    }

    [Theory]
    [InlineData("-unknown", "x")]
    [InlineData("-id")]
    [InlineData("-debug=maybe")]
    [InlineData("---id", "x")]
    [InlineData("-id", "x", "restart")]
    public void Bad_command_lines_are_refused_with_a_usage_message(params string[] args)
    {
        var e = Assert.Throws<ShimUsageException>(() => ShimFlagParser.Parse(args));
        Assert.Contains("usage:", e.Message);
    }
}
