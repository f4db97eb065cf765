using Sandbox.Shim.Daemon;

namespace Sandbox.Shim.Tests;

public sealed class ShimLogTests
{
    [Theory]
    [InlineData("plain", "plain")]
    [InlineData("a \"quoted\" \\ path", "a \\\"quoted\\\" \\\\ path")]
    [InlineData("line\nforged level=error msg=\"x\"", "line\\nforged level=error msg=\\\"x\\\"")]
    [InlineData("cr\rnul\0bell\a", "cr\\rnul\\u0000bell\\u0007")]
    public void A_message_stays_one_logfmt_value_whatever_it_holds(string message, string expected) =>
        Assert.Equal(expected, ShimLog.Escape(message));
}
