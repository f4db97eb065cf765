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

    /// <summary>
    /// `ctr run --rm` of `seq 1 20000` (108894 bytes) whose output the test starts reading only after the container
    /// marked, in its rootfs, that seq finished, and half a second more: the process exits meanwhile, while ctr's
    /// copy is blocked on its full stdout pipe and the rest waits in the FIFO. containerd 1.6.20's ctr closes its FIFO
    /// reader as soon as it deletes the task, which it does when Wait returns; the shim must hold the exit until the
    /// reader took everything (containerd's runc shim does not: ctr then prints 69632 bytes).
    /// </summary>
    public static async Task<CommandResult> RunWithLateReaderAsync(this PrivateContainerd containerd, string runtime, string image,
        string id, TimeSpan timeout)
    {
        string marker = Path.Combine(containerd.TaskBundle(id), "rootfs", "seq-done");
        return await containerd.CtrAsync(
            new[] { "run", "--fifo-dir", containerd.FifoDirectory, "--rm", "--runtime", runtime, image, id, "sh", "-c", "seq 1 20000; touch /seq-done" },
            timeout,
            beforeReadingStdout: async () =>
            {
                // bounded: if the marker never shows, read anyway (the output check then reports what arrived)
                for (int i = 0; i < 1200 && !File.Exists(marker); i++)
                    await Task.Delay(50);
                await Task.Delay(500);
            });
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
