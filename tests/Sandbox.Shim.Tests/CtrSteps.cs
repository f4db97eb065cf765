using Sandbox.Shim.Tests.Containerd;

namespace Sandbox.Shim.Tests;

/// <summary>The steps the ctr end-to-end tests share: a ctr call that must succeed, failure text with containerd's log
/// (which carries the shim's lines), and polling for a condition.</summary>
internal static class CtrSteps
{
    public static string Describe(this PrivateContainerd containerd, CommandResult result) =>
        $"{result}\n--- containerd log (tail) ---\n{LogTail(containerd, 60)}";

    public static string LogTail(this PrivateContainerd containerd, int lines) =>
        string.Join('\n', containerd.Log.Split('\n').TakeLast(lines));

    public static async Task<CommandResult> CtrOkAsync(this PrivateContainerd containerd, params string[] arguments)
    {
        var result = await containerd.CtrAsync(arguments);
        Assert.True(result.ExitCode == 0, containerd.Describe(result));
        return result;
    }

    public static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        for (int i = 0; i < 300; i++)
        {
            if (await condition())
                return;
            await Task.Delay(100);
        }
        Assert.Fail("the condition did not become true within 30 s");
    }
}
